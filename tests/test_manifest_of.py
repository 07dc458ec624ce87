"""``Manifest.of(ComponentClass)``: a plugin's manifest read from its component class attributes
(one short registration call per plugin), and the built-in plugins registered that way."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import BuildContext, Manifest, Tracks2D, hookimpl
from d2f_core.registry import CORE_API_VERSION, OptionsError, Registry, get_registry

ROOT = Path(__file__).resolve().parents[1]
CONVERTED = ("video", "depth", "segment", "tracker", "hand", "grasp", "embodiment", "solver", "dynamics",
             "estimator", "reward", "world")
"""plugins/ folders whose plugins register with Manifest.of (all of them)."""


class PatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    radius: int = Field(3, ge=1, description="patch radius, pixels")


def _unavailable() -> str | None:
    return "weights not found at ~/.cache/patch.pt"


class PatchTracker:
    name = "patch-tracker"
    kind = "tracker"
    capabilities = frozenset({"deterministic", "stand_in"})
    Options = PatchOptions
    description = "patch tracker for tests"
    extra = "cv"
    requires = ("numpy",)
    install = "nothing to install"
    available = staticmethod(_unavailable)
    verified = "by test_manifest_of"

    def __init__(self, options: PatchOptions | None = None) -> None:
        self.options = options or PatchOptions()

    def track(self, video, queries):  # pragma: no cover - never called here
        return Tracks2D(xy=np.zeros((1, 0, 2), np.float32), visible=np.zeros((1, 0), bool),
                        query_frame=np.zeros(0, np.int64))


def test_fields_are_read_from_the_class():
    m = Manifest.of(PatchTracker)
    assert (m.name, m.kind, m.options_model) == ("patch-tracker", "tracker", PatchOptions)
    assert m.capabilities == frozenset({"deterministic", "stand_in"})
    assert (m.description, m.extra, m.requires, m.install, m.verified) == (
        "patch tracker for tests", "cv", ("numpy",), "nothing to install", "by test_manifest_of")
    assert m.available is _unavailable  # the staticmethod, unwrapped
    assert m.stand_in is True           # default: "stand_in" in capabilities
    assert m.uses == {} and m.api_version == CORE_API_VERSION
    assert m.check_options is None and m.check_skip == {}


def test_defaults_for_a_minimal_class():
    class Minimal:
        name = "minimal"
        kind = "hand"

    m = Manifest.of(Minimal)
    assert (m.options_model, m.capabilities, m.description, m.extra, m.requires, m.install, m.available,
            m.stand_in, m.verified) == (None, frozenset(), "", None, (), None, None, False, "")
    assert isinstance(m.factory(None, None), Minimal)  # no constructor parameters: Class()


def test_overrides_win_over_class_attributes():
    m = Manifest.of(PatchTracker, name="patch-2", description="other", capabilities={"online"},
                    stand_in=False, available=None, extra=None)
    assert (m.name, m.description, m.capabilities, m.stand_in, m.available, m.extra) == (
        "patch-2", "other", frozenset({"online"}), False, None, None)
    assert m.kind == "tracker" and m.options_model is PatchOptions  # the rest still from the class
    assert Manifest.of(PatchTracker, stand_in=False).capabilities == PatchTracker.capabilities


def test_attributes_are_inherited():
    class Wider(PatchTracker):
        name = "wider"

    m = Manifest.of(Wider)
    assert (m.name, m.kind, m.options_model, m.description) == ("wider", "tracker", PatchOptions,
                                                                "patch tracker for tests")


def test_a_class_without_name_gives_a_clear_error():
    class Nameless:
        kind = "tracker"

    with pytest.raises(TypeError) as e:
        Manifest.of(Nameless)
    msg = str(e.value)
    assert "Manifest.of(Nameless)" in msg and "declares no `name`" in msg
    assert "name = " in msg and "pass name=" in msg
    Manifest.of(Nameless, name="named")  # the override is enough


def test_a_class_without_kind_or_with_a_non_string_name_is_refused():
    class Kindless:
        name = "kindless"

    with pytest.raises(TypeError, match=r"declares no `kind`.*one of video, "):
        Manifest.of(Kindless)

    class Numbered:
        name = 3
        kind = "tracker"

    with pytest.raises(TypeError, match="`name` = 3, not a string"):
        Manifest.of(Numbered)


def test_misuse_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="takes the component class"):
        Manifest.of(PatchTracker())
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['descripton'\].*description"):
        Manifest.of(PatchTracker, descripton="typo")

    class MethodAvailable(PatchTracker):
        def available(self):  # an instance method cannot be called with no arguments
            return None

    with pytest.raises(TypeError, match="`available` must be a staticmethod"):
        Manifest.of(MethodAvailable)

    class PropertyName(PatchTracker):
        @property
        def name(self):
            return "x"

    with pytest.raises(TypeError, match="`name` must be a plain class attribute"):
        Manifest.of(PropertyName)


def test_default_factory_builds_the_class_with_options_and_ctx():
    class WithCtx(PatchTracker):
        name = "with-ctx"

        def __init__(self, options, ctx=None):
            super().__init__(options)
            self.ctx = ctx

    ctx = BuildContext(seed=3)
    built = Manifest.of(WithCtx).factory(PatchOptions(radius=5), ctx)
    assert built.options.radius == 5 and built.ctx is ctx
    built = Manifest.of(PatchTracker).factory(PatchOptions(radius=4), ctx)
    assert built.options.radius == 4


def test_registered_through_a_hook_and_built_with_validated_options():
    class Available(PatchTracker):
        name = "patch-ok"
        available = None

    class Plugin:
        @staticmethod
        @hookimpl
        def d2f_register(register):
            register(Manifest.of(Available))

    reg = Registry(entry_points=[])
    reg.register_object(Plugin, name="patch-plugin", distribution="tests")
    assert not reg.failures
    tracker = reg.create("tracker", "patch-ok", {"radius": 7})
    assert isinstance(tracker, Available) and tracker.options.radius == 7
    with pytest.raises(OptionsError, match="did you mean 'radius'"):
        reg.create("tracker", "patch-ok", {"radus": 7})
    row = [r for r in reg.rows() if r["name"] == "patch-ok"][0]
    assert (row["description"], row["stand_in"], row["extra"]) == ("patch tracker for tests", True, "cv")


def test_a_factory_string_stays_lazy():
    m = Manifest.of(PatchTracker, factory="d2f_plugins.tracker.zero_motion:ZeroMotionTracker")
    assert m.factory == "d2f_plugins.tracker.zero_motion:ZeroMotionTracker"


# --------------------------------------------------------------------------- the built-in plugins


def _register_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "d2f_register":
            return [n for n in ast.walk(node) if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Name) and n.func.id == "register"]
    return []


@pytest.mark.parametrize("folder", CONVERTED)
def test_converted_plugins_register_with_one_short_manifest_of_call(folder):
    modules = [p for p in sorted((ROOT / "plugins" / folder).rglob("*.py")) if _register_calls(p)]
    assert modules, folder
    for path in modules:
        for call in _register_calls(path):
            (arg,) = call.args
            assert (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                    and arg.func.attr == "of" and getattr(arg.func.value, "id", "") == "Manifest"), (
                f"{path.relative_to(ROOT)}: register(Manifest.of(ComponentClass)) expected")
            assert not arg.keywords or {k.arg for k in arg.keywords} <= {"factory"}, (
                f"{path.relative_to(ROOT)}: declare fields on the class, not as overrides")


def test_built_in_manifests_match_their_classes():
    """What `d2f plugins` shows for a converted plugin is what its class declares."""
    reg = get_registry()
    checked = 0
    for e in reg.entries():
        module = e.entry_point.split(" = ", 1)[-1]
        if not any(module.startswith(f"d2f_plugins.{f}.") for f in CONVERTED):
            continue
        m = e.manifest
        cls = next(c for c in vars(__import__(module, fromlist=["_"])).values()
                   if isinstance(c, type) and getattr(c, "name", None) == m.name and getattr(c, "kind", None) == m.kind)
        assert m.capabilities == cls.capabilities and m.description == cls.description, m.name
        assert m.options_model is getattr(cls, "Options", None), m.name
        assert m.check_options is None and not m.check_skip, m.name
        checked += 1
    assert checked >= 20
