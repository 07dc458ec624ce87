"""The pytest base classes exist for the acting kinds too, generated from the kinds table."""

import pytest

from d2f_conformance import RewardConformance, StateEstimatorConformance
from d2f_core.protocols import KIND_SPECS
from d2f_core.registry import get_registry


class TestSimParticles(StateEstimatorConformance):
    @pytest.fixture
    def component(self):
        return get_registry().create("estimator", "sim-particles", {})


class TestFlowReward(RewardConformance):
    @pytest.fixture
    def component(self):
        return get_registry().create("reward", "flow", {})


def test_every_kind_has_a_base_class():
    import d2f_conformance

    for spec in KIND_SPECS:
        cls = getattr(d2f_conformance, f"{spec.protocol.__name__}Conformance")
        assert cls.kind == spec.name and any(n.startswith("test_") for n in vars(cls))
