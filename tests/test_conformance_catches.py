"""The conformance checks can fail: each deliberately broken component is caught by the named
check, with a message that says how to fix it, and its correct twin passes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import broken_plugins as bp
from d2f_conformance import CHECKS, check_component, check_names
from d2f_conformance.scenes import channel_order_video, standard_scene
from d2f_core import DepthVideo, ModelInputSpec, Tracks2D, Video
from d2f_core.validate import check_queries, check_video


def results_by_name(component, kind, **kw):
    return {r.check: r for r in check_component(component, kind, **kw)}


def failed(results):
    return {name for name, r in results.items() if r.status == "failed"}


# (id, kind, broken, twin, check that must catch it, fragments its message must contain)
CASES = [
    ("tracker-model-input-bgr", "tracker", bp.BGRModelInputTracker, bp.ReferenceTracker, "model_input_convention",
     ["model input is bgr but the model expects rgb", "do not reverse channels"]),
    ("tracker-model-input-div255", "tracker", bp.Div255ModelInputTracker, bp.ReferenceTracker,
     "model_input_convention", ["values are in 0-1 but the model expects 0-255", "do not divide by 255"]),
    ("tracker-float-visibility", "tracker", bp.FloatVisibilityTracker, bp.ReferenceTracker, "tracker_output_types",
     ["visible is float32", "return bool", "tracks2d"]),
    ("tracker-ignores-query-frame", "tracker", bp.IgnoresQueryFrameTracker, bp.ReferenceTracker,
     "tracker_query_position", ["not at their query", "start each track at its own frame"]),
    ("tracker-reads-bgr", "tracker", bp.BGRReadingTracker, bp.ReferenceTracker, "tracker_channel_order",
     ["reads the rgb frames as bgr", "frames[..., ::-1]"]),
    ("video-float-frames", "video", bp.FloatFramesVideoModel, bp.GoodVideoModel, "video_output_types",
     ["0-1", "multiply by 255 and convert to uint8"]),
    ("video-ignores-seed", "video", bp.RandomVideoModel, bp.GoodVideoModel, "video_seed_determinism",
     ["same image, prompt and seed=0 gave different videos", "seed every random source"]),
    ("segmenter-uint8-mask", "segmenter", bp.Uint8MaskSegmenter, bp.GoodSegmenter, "segment_output_types",
     ["uint8 mask, expected bool", "astype(bool)"]),
    ("depth-mutates-input", "depth", bp.MutatingDepth, bp.GoodDepth, "depth_no_input_mutation",
     ["modified its input", "work on a copy"]),
    ("dynamics-batch-inconsistent", "dynamics", bp.BatchInconsistentDynamics, bp.GoodDynamics,
     "dynamics_batch_consistency", ["differs from predicting action 0 alone", "no batch statistics"]),
    ("embodiment-angular-rows", "embodiment", bp.EEFrameAngularArm, bp.GoodArm,
     "embodiment_jacobian_finite_difference", ["angular rows", "end-effector frame", "world frame"]),
    ("world-ignores-seed", "world", bp.SeedIgnoringWorld, bp.GoodWorld, "world_reset_determinism",
     ["reset(0) twice gave different privileged_state", "default_rng(seed)"]),
    ("world-fixed-placement", "world", bp.FixedPlacementWorld, bp.GoodWorld, "world_reset_determinism",
     ["reset(0) and reset(1) give the same", "randomised by seed"]),
    ("solver-out-of-bounds", "solver", bp.OutOfBoundsSolver, bp.GoodSolver, "solver_actions_within_bounds",
     ["outside the world's bounds", "np.clip"]),
    ("grasper-unsorted", "grasper", bp.UnsortedGrasper, bp.GoodGrasper, "grasper_output_types",
     ["not sorted by score", "reverse=true"]),
]


@pytest.mark.parametrize("kind, broken, twin, check, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_component_is_caught_by_the_named_check(kind, broken, twin, check, fragments):
    res = results_by_name(broken(), kind)
    assert res[check].status == "failed", res[check]
    message = res[check].message.lower()
    for frag in fragments:
        assert frag in message, f"{frag!r} not in {res[check].message!r}"
    # only the root cause fails; checks that depend on a malformed output are skipped, not failed
    assert failed(res) == {check}, {n: res[n].message for n in failed(res)}


@pytest.mark.parametrize("kind, twin, check", [(c[1], c[3], c[4]) for c in CASES], ids=[c[0] for c in CASES])
def test_correct_twin_passes(kind, twin, check):
    res = results_by_name(twin(), kind)
    assert res[check].status == "passed", res[check]
    assert not failed(res), {n: res[n].message for n in failed(res)}


def test_check_names_are_api():
    required = {
        "video": ["video_output_types", "video_num_frames", "video_seed_determinism", "video_rejects_malformed_input",
                  "video_no_input_mutation", "video_end_frame_conditioning", "model_input_convention"],
        "depth": ["depth_output_types", "depth_values_valid", "depth_determinism", "depth_rejects_malformed_input",
                  "depth_no_input_mutation", "depth_metric_declared", "model_input_convention"],
        "segmenter": ["segment_output_types", "segment_rejects_malformed_input", "segment_no_input_mutation",
                      "segment_determinism", "segment_point_prompts", "model_input_convention"],
        "tracker": ["tracker_output_types", "tracker_query_position", "tracker_known_motion", "tracker_channel_order",
                    "tracker_determinism", "tracker_rejects_malformed_input", "tracker_no_input_mutation",
                    "model_input_convention"],
        "hand": ["hand_output_types", "hand_determinism", "hand_no_input_mutation", "hand_rejects_malformed_input"],
        "grasper": ["grasper_output_types", "grasper_on_object", "grasper_rejects_malformed_input",
                    "grasper_no_input_mutation", "grasper_determinism"],
        "dynamics": ["dynamics_output_types", "dynamics_batch_consistency", "dynamics_determinism",
                     "dynamics_rejects_malformed_input", "dynamics_no_input_mutation", "dynamics_action_names"],
        "embodiment": ["embodiment_description", "embodiment_fk_rigid", "embodiment_jacobian_finite_difference",
                       "embodiment_ik_round_trip", "embodiment_rejects_malformed_input",
                       "embodiment_no_input_mutation"],
        "world": ["world_action_bounds", "world_reset_determinism", "world_step_contract", "world_render",
                  "world_success_is_bool", "world_horizon"],
        "solver": ["solver_returns_policy", "solver_actions_within_bounds", "solver_determinism",
                   "solver_no_input_mutation", "solver_rejects_malformed_input"],
        "estimator": ["estimator_output_types", "estimator_starts_at_the_flow", "estimator_known_motion",
                      "estimator_determinism", "estimator_rejects_malformed_input", "estimator_no_input_mutation"],
        "reward": ["reward_output_types", "reward_determinism", "reward_follows_the_flow",
                   "reward_rejects_malformed_input", "reward_no_input_mutation"],
    }
    assert set(CHECKS) == set(required)
    for kind, names in required.items():
        have = check_names(kind)
        assert have[:2] == ["declares_name_and_capabilities", "has_protocol_methods"]
        assert set(names) <= set(have), set(names) - set(have)
        assert all(c.doc and "\n" not in c.doc for c in CHECKS[kind])


# --------------------------------------------------------------------------- channel-order probe design


class WeightedTracker(bp.ReferenceTracker):
    """The reference SSD tracker on a grey image made with the given R, G, B weights."""

    capabilities = frozenset({"deterministic"})

    def __init__(self, weights):
        self.weights = np.asarray(weights, np.float64)

    def gray(self, video):
        return video.frames.astype(np.float64) @ self.weights


@pytest.mark.parametrize("weights, ok", [
    (bp.LUMA, True),               # standard luminance on RGB
    ((1 / 3, 1 / 3, 1 / 3), True),  # equal weights: channel order does not matter, must still pass
    ((1.0, 0.0, 0.0), True),        # red only
    (bp.LUMA[::-1], False),         # luminance on frames read as BGR
    ((0.0, 0.0, 1.0), False),       # blue only
], ids=["luma", "equal", "red-only", "luma-as-bgr", "blue-only"])
def test_channel_order_video_separates_rgb_from_bgr_readers(weights, ok):
    res = results_by_name(WeightedTracker(weights), "tracker", only=["tracker_channel_order"])
    assert (res["tracker_channel_order"].status == "passed") is ok, res["tracker_channel_order"].message


def test_channel_order_video_ground_truth():
    cv = channel_order_video(num_frames=4, speed_px=2.0)
    f = cv.video.frames.astype(np.int32)
    # red moves exactly: texture at (x - 2t); blue and green are static
    assert np.array_equal(f[0, :, :, 2], f[3, :, :, 2]) and np.all(f[..., 1] == 128)
    assert np.abs(f[3, :, 10:, 0] - f[0, :, 4:-6, 0]).max() <= 1  # rounding only
    assert f[..., 0].std() > 1.8 * f[..., 2].std()  # red has the stronger contrast (luma and equal weights)
    assert 0.114 * f[..., 0].std() < 0.299 * f[..., 2].std()  # ... but not once read as BGR


# --------------------------------------------------------------------------- model_input_convention


class ProbeAdapter:
    """A tracker-shaped adapter whose model_input applies ``convert`` to T x H x W x 3 float frames."""

    name = "probe-adapter"
    capabilities = frozenset({"model_input"})

    def __init__(self, spec, convert):
        self.model_input_spec = spec
        self.convert = convert

    def model_input(self, video):
        return self.convert(video.frames.astype(np.float32))

    def track(self, video, queries):
        raise NotImplementedError


@pytest.mark.parametrize("spec, convert, fragment", [
    (ModelInputSpec("RGB", (0, 255), "THWC"), lambda x: x, None),
    (ModelInputSpec("BGR", (0, 255), "THWC"), lambda x: x[..., ::-1], None),
    (ModelInputSpec("RGB", (0, 1), "BTCHW"), lambda x: np.moveaxis(x / 255, -1, 1)[None], None),
    (ModelInputSpec("RGB", (-1, 1), "TCHW"), lambda x: np.moveaxis(x / 127.5 - 1, -1, 1), None),
    (ModelInputSpec("BGR", (0, 255), "THWC"), lambda x: x, "model input is rgb but the model expects bgr: reverse"),
    (ModelInputSpec("RGB", (0, 1), "THWC"), lambda x: x, "values are in 0-255 but the model expects 0-1: divide by 255"),
    (ModelInputSpec("RGB", (-1, 1), "THWC"), lambda x: x / 255, "x / 127.5 - 1"),
    (ModelInputSpec("RGB", (0, 255), "TCHW"), lambda x: x, "layout 'tchw' puts channels on axis 1"),
    (ModelInputSpec("RGB", (0, 255), "TWHC"), lambda x: x, "h and w axes are swapped"),
    (ModelInputSpec("RGB", (0, 255), "BTHWC"), lambda x: x, "names 5"),
    (ModelInputSpec("RGB", (0, 255), "THWC"), lambda x: x - x.mean(axis=(0, 1, 2)), "no per-pixel affine map"),
], ids=["rgb255", "bgr255", "rgb01-btchw", "rgb-pm1", "says-bgr-gives-rgb", "says-01-gives-255", "says-pm1-gives-01",
        "wrong-channel-axis", "hw-swapped", "missing-batch-axis", "per-channel-normalised"])
def test_model_input_convention(spec, convert, fragment):
    r = results_by_name(ProbeAdapter(spec, convert), "tracker", only=["model_input_convention"])["model_input_convention"]
    if fragment is None:
        assert r.status == "passed", r.message
    else:
        assert r.status == "failed" and fragment in r.message.lower(), r.message


def test_model_input_convention_needs_spec_and_is_skipped_when_not_declared():
    adapter = ProbeAdapter(None, lambda x: x)
    r = results_by_name(adapter, "tracker", only=["model_input_convention"])["model_input_convention"]
    assert r.status == "failed" and "model_input_spec" in r.message
    adapter.capabilities = frozenset()
    r = results_by_name(adapter, "tracker", only=["model_input_convention"])["model_input_convention"]
    assert r.status == "skipped"


def test_model_input_convention_feeds_images_to_segmenters():
    class Seg(bp.GoodSegmenter):
        capabilities = frozenset({"model_input"})
        model_input_spec = ModelInputSpec("RGB", (0, 1), "CHW")

        def model_input(self, image):
            return np.moveaxis(image.astype(np.float32), -1, 0)  # forgot / 255

    r = results_by_name(Seg(), "segmenter")["model_input_convention"]
    assert r.status == "failed" and "do not" not in r.message and "divide by 255" in r.message


# --------------------------------------------------------------------------- more contract violations


class NoValidationTracker(bp.ReferenceTracker):
    capabilities = frozenset({"deterministic"})

    def track(self, video, queries):
        q = np.asarray(queries, np.float32)
        T = video.frames.shape[0]
        xy = np.broadcast_to(q[None, :, -2:], (T, len(q), 2)).astype(np.float32)
        qf = np.clip(q[:, 0], 0, T - 1).astype(np.int64) if q.shape[1] == 3 else np.zeros(len(q), np.int64)
        return Tracks2D(xy=xy, visible=np.ones((T, len(q)), bool), query_frame=qf)


class UnnamedErrorTracker(bp.ReferenceTracker):
    capabilities = frozenset({"deterministic"})

    def track(self, video, queries):
        if np.asarray(queries).ndim != 2 or np.asarray(queries).shape[1] != 3:
            raise ValueError("bad input")
        return super().track(video, queries)


def test_tracker_rejects_malformed_input_catches_missing_validation_and_unnamed_errors():
    r = results_by_name(NoValidationTracker(), "tracker")["tracker_rejects_malformed_input"]
    assert r.status == "failed" and "accepted n x 2 queries" in r.message.lower() and "check_queries" in r.message
    r = results_by_name(UnnamedErrorTracker(), "tracker")["tracker_rejects_malformed_input"]
    assert r.status == "failed" and "does not name the argument 'queries'" in r.message


class StaticUndeclaredTracker(NoValidationTracker):
    def track(self, video, queries):
        check_video(video, "video")
        return super().track(video, check_queries(queries, video))


def test_tracker_known_motion_uses_the_true_box_motion():
    res = results_by_name(StaticUndeclaredTracker(), "tracker")
    r = res["tracker_known_motion"]
    assert r.status == "failed" and "moves +6.2" in r.message, r.message
    assert res["tracker_query_position"].status == "passed"  # stays at its queries, so that one holds

    class LyingZeroMotion(bp.ReferenceTracker):
        capabilities = frozenset({"zero_motion"})

    r = results_by_name(LyingZeroMotion(), "tracker")["tracker_known_motion"]
    assert r.status == "failed" and "declares 'zero_motion' but tracks move" in r.message


def test_reference_tracker_tracks_the_standard_scene_within_tolerance():
    """Ground truth of the check itself: the reference tracker follows the box to < 1.5 px."""
    from d2f_conformance.checks.tracker import frame0_queries
    from d2f_conformance import make_env
    env = make_env()
    q, idx = frame0_queries(env)
    tr = bp.ReferenceTracker().track(env.scene.video, q)
    truth, _ = env.scene.camera.project(env.scene.flow.points[-1, idx])
    assert np.all(np.linalg.norm(tr.xy[-1] - truth, axis=-1) < 1.5)
    assert np.median(truth[:, 0] - q[:, 1]) > 5.0  # the box really moves (a static tracker cannot pass)


def test_declares_name_and_capabilities():
    class SetCaps(bp.ReferenceTracker):
        capabilities = {"deterministic"}

    class UnknownCap(bp.ReferenceTracker):
        capabilities = frozenset({"deterministic", "metric_depth"})

    r = results_by_name(SetCaps(), "tracker", only=["declares_name_and_capabilities"])
    assert "frozenset" in r["declares_name_and_capabilities"].message
    r = results_by_name(UnknownCap(), "tracker", only=["declares_name_and_capabilities"])
    m = r["declares_name_and_capabilities"].message
    assert "['metric_depth'] are not known for kind 'tracker'" in m and "zero_motion" in m


def test_has_protocol_methods_checks_keyword_arguments():
    class NoLabels(bp.GoodSegmenter):
        def segment(self, image, text, *, points=None):
            return super().segment(image, text)

    r = results_by_name(NoLabels(), "segmenter", only=["has_protocol_methods"])["has_protocol_methods"]
    assert r.status == "failed" and "labels" in r.message and "Segmenter.segment" in r.message
    r = results_by_name(SimpleNamespace(name="x", capabilities=frozenset()), "world",
                        only=["has_protocol_methods"])["has_protocol_methods"]
    assert r.status == "failed" and "reset()" in r.message


def test_video_end_frame_conditioning_both_ways():
    class ClaimsEndFrame(bp.GoodVideoModel):
        capabilities = frozenset({"deterministic", "end_frame_conditioning"})

    class SilentlyIgnoresEndFrame(bp.GoodVideoModel):
        def generate(self, image, prompt, *, last_image=None, num_frames=49, seed=None):
            return super().generate(image, prompt, num_frames=num_frames, seed=seed)

    r = results_by_name(ClaimsEndFrame(), "video")["video_end_frame_conditioning"]
    assert r.status == "failed" and "DataError: last_image" in r.message  # the plugin's own error is shown
    r = results_by_name(SilentlyIgnoresEndFrame(), "video")["video_end_frame_conditioning"]
    assert r.status == "failed" and "accepted last_image" in r.message and "end_frame_conditioning" in r.message


def test_video_channel_order_catches_bgr_frames():
    class BGRFrames(bp.GoodVideoModel):
        def _wrap(self, frames, prompt, seed):
            return Video(frames=np.ascontiguousarray(frames[..., ::-1]), fps=8.0, model=self.name)

    res = results_by_name(BGRFrames(), "video")
    assert failed(res) == {"video_channel_order"} and "frames[..., ::-1]" in res["video_channel_order"].message


def test_depth_checks_values_and_declared_metric():
    class NegativeDepth(bp.GoodDepth):
        def estimate(self, video):
            d = super().estimate(video)
            return DepthVideo(depth=np.asarray(d.depth) - 1.5, metric=False)

    class ClaimsMetric(bp.GoodDepth):
        capabilities = frozenset({"metric_depth"})

    r = results_by_name(NegativeDepth(), "depth")["depth_values_valid"]
    assert r.status == "failed" and "negative" in r.message and "disparity" in r.message
    r = results_by_name(ClaimsMetric(), "depth")["depth_metric_declared"]
    assert r.status == "failed" and "metric=False" in r.message
    assert results_by_name(bp.GoodDepth(), "depth")["depth_metric_declared"].status == "skipped"


def test_grasper_on_object_measures_distance_to_the_object():
    class Offset(bp.GoodGrasper):
        def _order(self, grasps):
            out = []
            for g in super()._order(grasps):
                T = np.array(g.T_world_grasp)
                T[2, 3] += 0.10  # 10 cm above the box
                out.append(type(g)(T_world_grasp=T, width=g.width, score=g.score))
            return out

    r = results_by_name(Offset(), "grasper")["grasper_on_object"]
    assert r.status == "failed" and "10.0 cm" in r.message


def test_embodiment_jacobian_row_order_and_ik():
    class SwappedRows(bp.GoodArm):
        def jacobian(self, q):
            J = super().jacobian(q)
            return np.concatenate([J[3:], J[:3]])

    r = results_by_name(SwappedRows(), "embodiment")["embodiment_jacobian_finite_difference"]
    assert r.status == "failed" and "(omega; v)" in r.message

    from d2f_conformance.doubles import CartesianEmbodiment

    class LazyIK(CartesianEmbodiment):
        def ik(self, T_world_ee, q_init=None, *, position_only=False):
            res = super().ik(T_world_ee, q_init)
            return type(res)(q=np.asarray(q_init, float), success=True, position_error=0.0, rotation_error=0.0)

    assert results_by_name(CartesianEmbodiment(), "embodiment")["embodiment_ik_round_trip"].status == "passed"
    r = results_by_name(LazyIK(), "embodiment")["embodiment_ik_round_trip"]
    assert r.status == "failed" and "mm" in r.message
    assert results_by_name(bp.GoodArm(), "embodiment")["embodiment_ik_round_trip"].status == "skipped"


def test_dynamics_rejects_1d_actions():
    class Lenient(bp.GoodDynamics):
        def predict(self, points, actions):
            return super().predict(points, np.atleast_2d(actions))

    r = results_by_name(Lenient(), "dynamics")["dynamics_rejects_malformed_input"]
    assert r.status == "failed" and "1-d actions" in r.message.lower()


def test_solver_policy_must_end_within_horizon():
    class Endless(bp.GoodSolver):
        def solve(self, problem):
            player = super().solve(problem)
            player.actions = player.actions * 10
            return player

    r = results_by_name(Endless(), "solver")["solver_actions_within_bounds"]
    assert r.status == "failed" and "horizon" in r.message


def test_world_segmentation_capability():
    class UintMaskWorld(bp.GoodWorld):
        def object_mask(self, name):
            return super().object_mask(name).astype(np.uint8)

    class NoMaskMethod(bp.GoodWorld):
        object_mask = None

    class UndeclaredSegmentation(bp.GoodWorld):
        capabilities = frozenset({"deterministic"})

    assert results_by_name(bp.GoodWorld(), "world")["world_segmentation"].status == "passed"
    r = results_by_name(UintMaskWorld(), "world")["world_segmentation"]
    assert r.status == "failed" and "astype(bool)" in r.message
    r = results_by_name(NoMaskMethod(), "world")["world_segmentation"]
    assert r.status == "failed" and "no object_mask(name) method" in r.message
    assert results_by_name(UndeclaredSegmentation(), "world")["world_segmentation"].status == "skipped"


def test_standard_scene_is_unchanged_by_checks():
    before = standard_scene()
    for kind, cls in [("depth", bp.MutatingDepth), ("tracker", bp.ReferenceTracker)]:
        check_component(cls(), kind)
    from d2f_conformance.api import _shared_scene
    after = _shared_scene()
    assert np.array_equal(before.video.frames, after.video.frames)
    assert np.array_equal(before.depth, after.depth)
