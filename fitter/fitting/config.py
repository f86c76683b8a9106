"""Settings of a fit (`FitConfig`) and the presets "fast", "default", "accurate", "smplify"."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["FitConfig", "PRESETS", "fit_config", "resolve_config"]


@dataclass(frozen=True)
class FitConfig:
    """Settings of one fit. Prior weights are per stage and squared in the loss (SMPLify).

    The defaults are the "default" preset: start from the keypoint lifter, a camera stage, then
    one stage at SMPLify's final prior weights with the pose held near the lifter's (anchor).
    With finger joints and hands42 keypoints the fingers and arms are also solved
    (Levenberg-Marquardt) before and after the body stages.
    The pose prior is the shipped CMU GMM (priors.default_prior_terms) with the joint limits as
    bounds; its weight (gmm_scale), the joint-limit, angle and anchor weights were tuned on
    synthetic bodies posed by the CMU train subjects (benchmarks/synthetic.py --pose-source train).
    "smplify" is SMPLify's own procedure with SPIN's constants: upright mean-pose start, flip
    test, four stages of annealed prior weights, the GMM alone. Residuals are in 224 px
    person-crop units (SPIN's), so sigma and the data-term weights hold at any image size.
    """

    start: str = "lifter"  # initializer used when the caller passes no start: "lifter" or "upright" (fitter.init)
    lr: float = 0.02  # Adam step size; decays (cosine) to LR_FINAL_FRACTION of it within each stage
    camera_iters: int = 10
    stage_iters: tuple[int, ...] = (50,)
    pose_prior_weights: tuple[float, ...] = (4.78,)  # SMPLify's final stage
    shape_prior_weights: tuple[float, ...] = (5.0,)  # SMPLify's final stage
    # SPIN uses 15.2 with its GMM; joint limits already stop hyperextension. exp(2 sign angle) costs
    # a straight elbow or knee as much as a slightly hyperextended one: fits started from the true
    # pose paid it on held-out bodies with straight limbs. 5 -> 2 and the joint limits 10 -> 3 on the
    # CMU train subjects (seeds 5 and 11, 96 bodies): 0.4-0.5 mm less PA-MPJPE in every row (angle
    # weights 0, 1 and 2 gave the same fits)
    angle_prior_weight: float = 2.0
    # x the joint-limit penalty (rad^2 outside the limits, 0 inside). 300 before the CMU GMM, then
    # 10; the converted CMU poses step outside fitter's limits (elbow carrying angle, ankles, head)
    # in 98 % of frames, and a stronger bound pulled fits of them away from the truth
    joint_limit_weight: float = 3.0
    pose_l2_scale: float = 0.1  # the weak L2 pose prior (no GMM) is this x the pose prior weight
    gmm_scale: float = 0.1  # the GMM pose prior is this x the pose prior weight (1: SMPLify's)
    anchor_weight: float = 15.0  # x squared distance (rad^2) of the body pose to an anchored start's
    # x squared change (m^2) of the camera translation in the camera stage: SPIN's number, but it
    # weighs metres at the photo's real focal here, not SPIN's crop-camera depth (f = 5000 px)
    depth_weight: float = 100.0
    sigma: float = 100.0  # Geman-McClure sigma, in 224 px crop units (SPIN)
    landmarks3d_weight: float = 2000.0  # weight of the 3D landmark term (metres^2), used when landmarks are given
    silhouette_iters: int = 40  # extra final stage when person masks are given
    silhouette_weight: float = 2e4  # x chamfer loss (squared distances / image diagonal^2)
    part_silhouette_weight: float = 1.0  # per-part term, relative to the whole-body silhouette term
    penetration_weight: float = 1e4  # x squared sphere overlaps (m^2) between people of one photo
    # x squared depth-order violations (m^2) between people of one photo; off by default: on 16
    # two-person renders (benchmarks/people.py) the order was right without it, it gained 1 cm
    # of depth and doubled the time
    depth_order_weight: float = 0.0
    # SMPL-X's face (models with a jaw joint and expression blend shapes, keypoints with face51
    # points; fitting.face), in the last body stage only (SMPLify-X weighs the face 0 before its
    # last stage). x the face51 keypoints' weights (squared in the loss, like all weights).
    # SMPLify-X: 2.0; the 51 face points already outnumber the body's, and on synthetic SMPL-X
    # bodies (coco17+hands42+face51, 8 cases) 2.0 raised the body points' 2D error from 8.4 to
    # 10.5 px (1.0: 8.7 px) for the same jaw error (5.2 deg) and 0.3 px less face error
    face_keypoint_weight: float = 1.0
    # SMPLify-X's final-stage face priors (cfg_files/fit_smplx.yaml) x 0.2: its data term is in
    # pixels of photos where people span ~950 px, fitter's in 224 px crop units (a person ~187
    # units), so the same data-to-prior balance takes 187 / 950 of its weights. At its own weights
    # the jaw opened a third of the truth and expressions shrank to 70 % (synthetic, above).
    # x jaw_pose (rad) per axis, squared: sum((jaw_pose * w)^2); opening (x) penalised 10x less
    jaw_prior_weights: tuple[float, float, float] = (9.56, 95.6, 95.6)
    expression_prior_weight: float = 1.0  # x squared expression coefficients (w^2 sum(e^2)); SMPLify-X: 5
    # Hands (models with finger joints and keypoints with hands42 points; losses.hand_terms,
    # fitting.hand_solve). x the hands42 keypoints' weights (squared in the loss, like all
    # weights) in the Adam body stages. A hand spans ~8 % of the person's height; its points get
    # the body points' weight per point and already outnumber them (42 vs 17-33); 2 and 3 pulled
    # the arms away from the body points (body 2D error x1.5) without better fingers (synthetic
    # tuning, seeds 100/101)
    hand_keypoint_weight: float = 1.0
    # ... and in the finger and arm solve (fitting.hand_solve), the fingers' own stage: SMPLify-X
    # weighs hand joints 0, 0, 0, 0.1, 2.0 over its five stages (cfg_files/fit_smplx.yaml), 2.0
    # where the fingers are fitted. Against 1.0 (seeds 100/101; real photos of the tuning sets
    # mpii, 3dpw, ochuman, h36m, 3dhp): finger error 11.9 -> 11.3 deg clean, 17.1 -> 17.7 with
    # 2 px noise, body points' 2D error 4.60 -> 4.85 px; real hands within 5 % of their size
    # 13 -> 14 of 14, wrists and elbows against the human labels 10.22 -> 10.25 % of the person
    hand_solve_keypoint_weight: float = 2.0
    finger_limit_weight: float = 10.0  # x the finger joint-limit penalty (rad^2 outside the limits), as the body's
    # x distance (rad) of the hand pose to the relaxed hand (weak curl prior; squared in the loss):
    # 0.1-1.0 changed the finger error by < 0.3 deg on clean keypoints; it holds unseen fingers
    hand_prior_weight: float = 0.3
    # Levenberg-Marquardt steps on the fingers and arms, the rest of the body held
    # (fitting.hand_solve): after the camera stage, from the relaxed hand and from fists of
    # `hand_start_curls` radians (each hand keeps its best), and again at the end, after the
    # body and silhouette stages (the fingers meet the final arms). Adam alone needed ~200
    # iterations for the fingers, so the Adam body stages leave the hand pose alone. Curled
    # starts: from the relaxed hand alone, curled fingers often settled bent backwards (2D
    # cannot tell): 24 -> 14 deg finger error.
    # Steps (mean finger error over seeds 100 / 101): the tail still turns the fingers (7 + 3
    # steps: +1.4 deg over 10 + 5); 9 + 5: +0.1 deg, 10 % less solve time. One try per step
    # needed 11 + 6 steps for the same error; damping lowered x0.5 instead of x0.3: +0.8 deg.
    hand_solve_iters: int = 9
    hand_start_curls: tuple[float, ...] = (0.8,)
    hand_polish_iters: int = 5
    # stop an item's steps once one lowers its cost by less than this fraction (0: never). Off:
    # the tail of a solve still turns the fingers (flat directions of 2D keypoints): 1e-3 saved
    # 7 % of the passes of single fits and cost up to 1.8 deg of finger error (seeds 100 / 101;
    # with 2 tries a step and the stop on growing damping, hand_solve: +0.2 deg clean, -0.2 noisy)
    hand_solve_stop: float = 0.0
    hand_arm_weight: float = 1.0  # x the arm joints' change (rad) in those steps, a residual beside the keypoints
    # Polish stage after the body stages (off in every preset; for keypoints without detector
    # noise: projected motion capture, synthetic bodies): `polish_iters` more Adam steps with the
    # priors x (rms / polish_noise)^2, clamped to [polish_min_scale^2, 1], per item, rms the seen
    # keypoints' root-mean-square distance to the fit so far (224 px crop units): keypoints the fit
    # already meets closer than detector noise weaken the priors that hold it off them. Held-out
    # CMU bodies, accurate + 100 steps, PA-MPJPE clean / 3 px / 20 % missing: SMPL-24 37.7 / 45.2 /
    # 48.1 -> 35.8 / 44.7 / 46.6 mm (2D error 2.10 -> 1.51 px), COCO-17 39.3 / 45.7 / 57.7 -> 38.8 /
    # 46.7 / 57.8: the 3 px rows of the sparser sets lose up to 1 mm (the extra steps chase the
    # noise), and real photos (benchmarks/real.py) gain nothing (detections sit further than
    # polish_noise from any fit) for 0.2 s more per photo, so no preset turns it on
    polish_iters: int = 0
    polish_noise: float = 2.0
    polish_min_scale: float = 0.25
    restart_poses: tuple[str, ...] = ("bent_legs",)  # alternative starts for restartable items (fitter.body.poses)
    name: str = "custom"


PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(
        camera_iters=5, stage_iters=(30,), silhouette_iters=20, restart_poses=(), anchor_weight=10.0, name="fast"
    ),  # fmt: skip
    "default": FitConfig(name="default"),
    "accurate": FitConfig(camera_iters=30, stage_iters=(150,), silhouette_iters=80, name="accurate"),
    # SMPLify (Bogo et al. 2016) with SPIN's constants: upright start (flip test for side views), the
    # GMM alone (no joint limits), angle prior 15.2, Adam lr 1e-2, 100 iterations per phase (camera,
    # then SMPLify's four annealed stages); none of fitter's additions (anchor, restarts, silhouette)
    "smplify": FitConfig(
        start="upright",
        lr=0.01,
        camera_iters=100,
        stage_iters=(100, 100, 100, 100),
        pose_prior_weights=(404.0, 404.0, 57.4, 4.78),
        shape_prior_weights=(100.0, 50.0, 10.0, 5.0),
        angle_prior_weight=15.2,
        joint_limit_weight=0.0,
        gmm_scale=1.0,
        anchor_weight=0.0,
        restart_poses=(),
        silhouette_iters=0,
        name="smplify",
    ),  # fmt: skip
}


def resolve_config(config: str | FitConfig) -> FitConfig:
    """A FitConfig as given, or the preset of that name (ValueError naming the presets)."""
    if isinstance(config, FitConfig):
        return config
    try:
        return PRESETS[config]
    except KeyError:
        raise ValueError(f"unknown config {config!r}; use one of {', '.join(PRESETS)} or a FitConfig") from None


def fit_config(name_or_config: str | FitConfig, **overrides) -> FitConfig:
    """A preset (or given config) with fields overridden, e.g. fit_config("fast", stage_iters=(100,))."""
    return replace(resolve_config(name_or_config), **overrides)
