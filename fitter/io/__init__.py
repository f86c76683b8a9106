"""File input/output: chumpy-free pickles, images, keypoint files, atomic writes."""
