"""The forms that say how the set is drawn: the Style panel (preset, style text, the generated
reference) and the Settings panel (model, sampling, size, LoRAs and VAE, the StyleAligned
knobs).

Imports ``support`` and ``threads``."""

from .settings_panel import SettingsPanel
from .style_panel import StylePanel

__all__ = ["SettingsPanel", "StylePanel"]
