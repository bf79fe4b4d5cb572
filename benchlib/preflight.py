"""Checks before any generation: every model is reachable, known, and not larger than allowed."""

from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.providers import ModelInfo, provider_for


def preflight_models(config: BenchmarkConfig) -> dict[str, ModelInfo]:
    """ModelInfo per spec; raises on the first model that cannot be used, naming it and why."""
    infos = {}
    for spec in config.model_specs:
        info = provider_for(spec, config).preflight()
        if info.size_b is not None and info.size_b > config.max_model_b:
            raise BenchlibError(
                f"{spec}: model has {info.size_b:.2f}B parameters, more than max_model_b = "
                f"{config.max_model_b:g}B; pick a smaller model or raise max_model_b"
            )
        infos[str(spec)] = info
    return infos
