"""The conformance run shared by the video-service adapter tests (Kling, Veo): every check passes
against the adapter's protocol stand-in, and the stand-in's server stops with the check."""

import threading
import time


def assert_conformance_against_stand_in(plugin: str) -> None:
    from d2f_conformance import all_passed, check_plugin, format_results

    results = check_plugin(plugin, kind="video")
    assert all_passed(results), format_results(results)
    passed = {r.check for r in results if r.status == "passed"}
    assert {"video_output_types", "video_num_frames", "video_end_frame_conditioning", "video_channel_order",
            "model_input_convention"} <= passed
    deadline = time.monotonic() + 2.0
    while any(t.name == "d2f-stand-in" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "d2f-stand-in" for t in threading.enumerate())  # did not outlive the check
