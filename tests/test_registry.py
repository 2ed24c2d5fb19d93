"""Model registry: names, lazy factories, the `input` model and one-line errors."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.models import registry
from cpgd_bench.models.registry import ModelError, Restorer, get_model, model_names, register_model

EXPECTED = {"input", "cpfp", "cpgd", "pvdnet", "cdvd-tsp", "stdan", "dstnet", "vrt", "rvrt", "shift-net", "bsstnet"}


class _NotARestorer:
    def __init__(self, **options: object) -> None:
        self.options = options


def not_a_restorer(**options: object) -> _NotARestorer:
    return _NotARestorer(**options)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test disappear after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_every_contract_name_is_registered() -> None:
    assert set(model_names()) == EXPECTED
    assert model_names() == sorted(model_names())


def test_input_returns_the_decoded_frames() -> None:
    model = get_model("input")
    assert isinstance(model, Restorer) and model.window is None and model.overlap == 0
    lq = torch.rand(3, 3, 8, 12)
    clip = {"lq": lq, "flow_prev": torch.zeros(3, 2, 8, 12), "flow_next": torch.zeros(3, 2, 8, 12),
            "flow_valid": torch.zeros(3, 2, 8, 12), "residual": torch.full((3, 1, 8, 12), 0.5)}
    assert torch.equal(model.restore(clip), lq)
    prov = model.provenance()
    assert prov["model"] == "input" and prov["weights"] is None and prov["weights_sha256"] is None
    assert set(prov) >= {"model", "weights", "weights_sha256", "upstream_commit", "label", "notes"}


def test_input_refuses_weights(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ModelError, match="takes no weights"):
        get_model("input", weights=tmp_path / "w.pth")


def test_options_a_model_does_not_take_are_one_line_errors(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ModelError, match=r"model 'input' does not take these options \(got an unexpected keyword"):
        get_model("input", upstream=tmp_path)


@pytest.mark.parametrize(("typo", "suggestion"), [("cpfb", "cpfp"), ("VRT", "vrt"), ("shiftnet", "shift-net"),
                                                  ("bsst", "bsstnet")])
def test_unknown_name_suggests_the_closest(typo: str, suggestion: str) -> None:
    with pytest.raises(ModelError, match=rf"unknown model '{typo}'; did you mean '{suggestion}'\?") as e:
        get_model(typo)
    assert "\n" not in str(e.value)


def test_unknown_name_far_from_all_lists_them() -> None:
    with pytest.raises(ModelError, match="unknown model 'zzzzzz'; known models: bsstnet, cdvd-tsp") as e:
        get_model("zzzzzz")
    assert "did you mean" not in str(e.value)


def test_registered_but_unwritten_module_is_a_one_line_error(scratch_registry: None) -> None:
    register_model("later", "cpgd_bench.models.not_written_yet:Factory", "a model still being written")
    with pytest.raises(ModelError, match="not installed in this checkout yet"):
        get_model("later")


def test_factory_must_return_a_restorer(scratch_registry: None) -> None:
    register_model("odd", "tests.test_registry:not_a_restorer", "returns the wrong type")
    with pytest.raises(ModelError, match="returned _NotARestorer, not a Restorer"):
        get_model("odd")
    with pytest.raises(ModelError, match="must be 'module:attribute'"):
        register_model("bad", "no_colon_here", "bad spec")
    register_model("missing-attr", "tests.test_registry:nothing_here", "attribute absent")
    with pytest.raises(ModelError, match="has no 'nothing_here'"):
        get_model("missing-attr")


def test_models_command_lists_the_registry() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines()}
    assert listed == EXPECTED


def test_run_command_unknown_model_is_one_line(tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(main, ["run", "--model", "cpfb", "--store", str(tmp_path / "x.zarr")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: unknown model 'cpfb'; did you mean 'cpfp'? known models: "
                                                  + ", ".join(sorted(EXPECTED))]
