"""Checks before any generation: every model is reachable, known, and not larger than allowed."""

from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.generation.providers import ModelInfo, provider_for


def preflight_models(config: BenchmarkConfig) -> dict[str, ModelInfo]:
    """ModelInfo per spec; raises on the first model that cannot be used, naming it and why."""
    infos = {}
    for spec in config.model_specs:
        info = provider_for(spec, config).preflight()
        if info.size_b is None and not config.allow_unknown_size:
            raise BenchlibError(
                f"{spec}: its server does not tell the model's parameter count, so the size "
                f"guard (max_model_b = {config.max_model_b:g}B) cannot check it; if it fits "
                "this machine, set allow_unknown_size (--allow-unknown-size)"
            )
        if info.size_b is not None and info.size_b > config.max_model_b:
            raise BenchlibError(
                f"{spec}: model has {info.size_b:.2f}B parameters, more than max_model_b = "
                f"{config.max_model_b:g}B; pick a smaller model or raise max_model_b"
            )
        infos[str(spec)] = info
    return infos
