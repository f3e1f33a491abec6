"""The Settings panel's knobs in words and numbers: the samplers' names, what each knob does to
the pictures (tooltips), the labels of the StyleAligned switches, the control models' fields and
the style-strength slider's scale."""

from __future__ import annotations

SCHEDULER_NAMES = {
    "ddim": "DDIM (the paper's)",
    "euler": "Euler",
    "dpmpp-2m": "DPM++ 2M",
}

# Tooltips: what each knob does to the pictures, in words an illustrator uses (spec section 2).
TIPS = {
    "steps": "How many times the picture is refined. More steps: finer detail, slower. "
             "StyleAligned likes many steps (30–50); very few steps weaken the shared style.",
    "guidance": "How literally the prompt is followed. 5 is the paper's default; higher is "
                "more literal and more saturated, lower is looser. Very high values can drown "
                "the shared style.",
    "scheduler": "The sampling method. DDIM is what the paper used and is required for exact "
                 "reference-picture inversion; the others are alternatives.",
    "negative": "What you do not want to see (e.g. “blurry, text, watermark”), for every "
                "panel. Leave empty for none: a long negative prompt can weaken the shared style.",
    "micro_batch": "How many panels are drawn at once. Auto picks what fits in the graphics "
                   "memory; lower it if you run out of memory. It never changes the pictures.",
    "strength": "How strongly the panels lean on the reference's style. The middle is the "
                "paper's default; right: more faithful style (but the reference's objects may "
                "creep in); left: freer panels.",
    "share_attention": "The heart of StyleAligned: while each panel is drawn it looks at the "
                       "reference and borrows its textures, colours and strokes. Off: every "
                       "panel is drawn on its own (no shared style).",
    "adain_queries": "Before borrowing, tune each panel's ‘what am I looking for’ to the "
                     "reference's overall tone. On by default; it makes the style stick.",
    "adain_keys": "Tune each panel's ‘what do I offer’ to the reference's tone too, so panel "
                  "and reference mix evenly. On by default.",
    "adain_values": "Also tune the borrowed colours and details themselves to the reference. "
                    "Stronger style, but content of the reference leaks in more. Off by "
                    "default.",
    "share_group_norm": "Share the reference's brightness and contrast balance with every "
                        "panel. Makes colours and values match closely; on by default for "
                        "reference pictures, off for prompt-only sets.",
    "shared_score_shift": "Extra weight of the reference while borrowing. 0: the reference "
                          "counts as much as the panel itself; 0.69 (ln 2): twice as much, the "
                          "paper's setting for reference pictures. Higher: more faithful style, "
                          "more risk of copying the reference's subject.",
    "shared_score_scale": "How sharply panels focus on the reference. Below 1 softens the "
                          "borrowing: the authors use 0.5 (with weight 0) for famous paintings "
                          "whose subject leaks into every panel.",
    "only_self_level": "Share in fewer layers of the model. 0: every layer shares (strongest "
                       "style); 0.5: half of them; 1: none. Raise it when panels look too alike.",
    "full_attention_share": "Experiment from the paper: every picture looks at all the others "
                            "at once instead of at one reference. Usually less consistent, and "
                            "slower with many panels; re-roll of one panel is not possible.",
    "inversion_guidance": "For reference pictures: how much the caption steers the reading-in "
                          "of the picture. 2 is the paper's value.",
    "inversion_offset": "For reference pictures: how many early steps are skipped when the "
                        "picture is replayed. Auto: 5 of every 50 steps, as in the paper.",
}

SWITCH_LABELS = {
    "share_attention": "Share the reference's style",
    "adain_queries": "Match tone: what panels look for",
    "adain_keys": "Match tone: what panels offer",
    "adain_values": "Match tone: borrowed details",
    "share_group_norm": "Share brightness and contrast",
    "full_attention_share": "Everyone looks at everyone (experiment)",
}
"""The StyleAligned switches (``StyleAlignedSettings`` fields) as the Advanced section labels them."""

CONTROL_MODEL_FIELDS = (
    ("controlnet_canny", "ControlNet for edges", "diffusers/controlnet-canny-sdxl-1.0",
     "The SDXL ControlNet that reads edge maps (hub id or folder)"),
    ("controlnet_depth", "ControlNet for depth", "diffusers/controlnet-depth-sdxl-1.0",
     "The SDXL ControlNet that reads depth maps (hub id or folder)"),
    ("depth_model", "Depth estimator", "Intel/dpt-hybrid-midas",
     "The model that turns a control picture into a depth map (hub id or folder)"),
)
"""(GenerationSettings field, label, its default, tooltip) of each control model."""

STRENGTH_RANGE = (-1.0, 1.4)
"""The style-strength slider maps onto shared_score_shift across this range (0 = the middle)."""


def strength_position(shift: float) -> int:
    """The style-strength slider's position (0..100) for a ``shared_score_shift``."""
    low, high = STRENGTH_RANGE
    fraction = 0.5 * (shift - low) / (0 - low) if shift <= 0 else 0.5 + 0.5 * shift / high
    return int(round(100 * min(1.0, max(0.0, fraction))))


def strength_shift(position: int) -> float:
    """The ``shared_score_shift`` at a style-strength slider position (0..100)."""
    low, high = STRENGTH_RANGE
    fraction = position / 100
    if fraction <= 0.5:
        return low + (0 - low) * fraction / 0.5
    return high * (fraction - 0.5) / 0.5
