"""Checks before any generation: every model is reachable, known, and not larger than allowed."""

from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.providers import ModelInfo, provider_for


def preflight_models(config: BenchmarkConfig, load_local: bool = True) -> dict[str, ModelInfo]:
    """ModelInfo per spec; raises on the first model that cannot be used, naming it and why.
    Without `load_local`, a `local:` model is only found (its GGUF file exists): a service that
    merely triggers runs should not load weights it will not use; the flow checks the size when
    it plans the run."""
    infos = {}
    for spec in config.model_specs:
        provider = provider_for(spec, config)
        if spec.provider == "local" and not load_local:
            infos[str(spec)] = ModelInfo(spec=str(spec))
            continue
        info = provider.preflight()
        if info.size_b is not None and info.size_b > config.max_model_b:
            raise BenchlibError(
                f"{spec}: model has {info.size_b:.2f}B parameters, more than max_model_b = "
                f"{config.max_model_b:g}B; pick a smaller model or raise max_model_b"
            )
        infos[str(spec)] = info
    return infos
