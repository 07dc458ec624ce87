"""Run config: YAML, --set overrides, errors that name the path and the fix."""

import pytest

from d2f_core.config import ConfigError, DEFAULT_PROMPT_TEMPLATE, apply_overrides, load_config


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task: {instruction: open the oven, object: oven door}\n"
                 "tracker: {plugin: zero-motion}\nsolver: {plugin: trajopt, options: {w_flow: 10}}\n")
    cfg = load_config(p, ["solver.options.w_flow=5", "seed=3", "flow.num_points=256",
                          "solver.options.weights=[1, 2]", "task.object=door"])
    assert cfg.solver.options == {"w_flow": 5, "weights": [1, 2]}
    assert cfg.seed == 3 and cfg.flow.num_points == 256 and cfg.task.object == "door"
    assert cfg.flow.prompt_template == DEFAULT_PROMPT_TEMPLATE
    assert "by one hand. The camera holds a still pose" in DEFAULT_PROMPT_TEMPLATE


def test_switching_plugin_drops_old_options():
    d = {"tracker": {"plugin": "cotracker3", "options": {"weights": "/x"}}}
    apply_overrides(d, ["tracker.plugin=zero-motion"])
    assert d == {"tracker": {"plugin": "zero-motion"}}
    # options given on the command line survive, whatever their order
    d = {"video": {"plugin": "sim-oracle", "options": {"fps": 8}}}
    apply_overrides(d, ["video.options.base_url=http://127.0.0.1:1", "video.plugin=kling"])
    assert d == {"video": {"plugin": "kling", "options": {"base_url": "http://127.0.0.1:1"}}}


def test_errors_name_the_path_and_suggest(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("tracker: {plugn: zero-motion}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "tracker.plugn: unknown key; did you mean 'plugin'?" in msg
    p.write_text("flow: {num_points: -3}\n")
    with pytest.raises(ConfigError, match=r"flow.num_points: Input should be greater than or equal to 1 \(got -3\)"):
        load_config(p)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["seed"])
    with pytest.raises(ConfigError, match="seed is a value, not a section"):
        load_config(None, ["seed=1", "seed.x=2"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)


def test_shipped_recipes_resolve_by_name_from_any_folder(tmp_path, monkeypatch):
    from d2f_core.config import ConfigError, load_config, recipes

    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert {"demo", "bread_in_bowl", "open_oven", "open_door", "cover_bowl"} <= set(recipes())
    cfg = load_config("open_oven", ["solver.plugin=rigvid"])
    assert cfg.world.options["task"] == "open_oven" and cfg.solver.plugin == "rigvid"
    assert load_config("configs/bread_in_bowl.yaml").task.object == "bread"
    with pytest.raises(ConfigError, match="shipped recipes.*open_oven"):
        load_config("configs/open_ovn.yaml")


def test_weights_block_fills_the_options_of_the_plugin_it_names(monkeypatch):
    from d2f_core.config import ConfigError, load_config
    monkeypatch.setenv("W", "/data/w")
    data = {"video": {"plugin": "wan2.1"}, "tracker": {"plugin": "cotracker3", "options": {"weights": "/mine.pth"}},
            "weights": {"wan2.1": {"weights": "$W/wan"}, "cotracker3": {"weights": "$W/ct.pth"},
                        "kling": {"base_url": "unused"}}}
    cfg = load_config(data=data)
    assert cfg.video.options == {"weights": "/data/w/wan"}          # $VARIABLES expanded
    assert cfg.tracker.options == {"weights": "/mine.pth"}          # the component's own option wins
    # switching the plugin does not hand wan2.1's weights to another plugin
    assert load_config(data=data, overrides=["video.plugin=kling"]).video.options == {"base_url": "unused"}
    with pytest.raises(ConfigError, match="weights.video: 'video' is a component kind; key the weights by the plugin"):
        load_config(data={"weights": {"video": {"weights": "x"}}})


def test_real_recipes_resolve_by_name():
    from d2f_core.config import load_config, recipes
    assert {"real/bread_in_bowl", "real/open_oven", "real/cover_bowl"} <= set(recipes())
    for name in ("real/open_oven", "configs/real/open_oven.yaml", "real/open_oven.yaml"):
        cfg = load_config(name)
        assert cfg.video.plugin == "wan2.1" and cfg.grasper.plugin == "anygrasp" and cfg.tracker.plugin == "cotracker3"
        assert cfg.depth.plugin == "spatialtracker-v2" and cfg.segmenter.plugin == "grounded-sam2"
        assert cfg.hand.plugin == "hamer" and cfg.task.object == "oven door"
