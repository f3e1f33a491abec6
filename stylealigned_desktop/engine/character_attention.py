"""Subject-driven shared attention (spec section 13): anchors recorded, panels sharing them.

Every step, the anchors run in one UNet call of their own right after the references' call
(``denoise.recorded_eps``): they share the references' style as panels do (AdaIN, shared keys)
and, in the character layers, see the other anchors of their character through those anchors'
masks. In each character layer their keys and values after AdaIN are recorded
(:attr:`CharacterState.recorded`). A panel that names characters then reads them: in the
character layers its keys are ``[K_b ; s K_refs ; K_a]`` for every anchor a of every character
it names, in the fixed-shape form: all of an anchor's tokens, with logit bias
``character_shift`` where the token is inside the anchor's mask M_a and kept by the dropout
D_ba, and -inf elsewhere (:func:`anchor_bias`). D_ba depends only on (panel seed, step, layer
index, anchor index) (:func:`dropout_keep`), so a panel never depends on its batch or shard.
A row that sees no anchor token (no mask yet at step 0, dropout 1, no character) is computed
by the plain section-4 path, so it equals itself in a set without characters exactly.

The cross-attention layers at the deepest resolution add the subject maps of every anchor and
of every panel that names a character (``subject_masks.SubjectMapProcessor``); at the end of
step i :meth:`CharacterState.end_step` turns them into masks, which step i + 1 uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .subject_masks import (
    SubjectMapProcessor,
    deepest_cross_attention_names,
    grid_of,
    resize_nearest,
    subject_mask,
)


@dataclass(frozen=True)
class MappedRow:
    """A run row that needs subject maps: an anchor (its character) or a panel naming characters."""

    names: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    """Per name, its subject-word token positions in the row's text (those CLIP reads)."""
    latent: tuple[int, int]
    """The row's latent (height, width)."""
    seed: int
    anchor: int | None = None
    """The anchor's index among all anchors; None for a panel."""
    mapped: bool = True
    """Whether its subject maps are made: not for a panorama's panel, whose MultiDiffusion
    windows each see a part of it (it shares its characters all the same)."""


def dropout_seed(panel_seed: int, step: int, layer: int, anchor: int) -> int:
    """The dropout generator's seed for (panel seed, step, layer index, anchor index): 64 bits
    of the SHA-256 of the four numbers (docs/characters.md)."""
    text = f"{int(panel_seed)}/{int(step)}/{int(layer)}/{int(anchor)}".encode("ascii")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def dropout_keep(panel_seed: int, step: int, layer: int, anchor: int, tokens: int, dropout: float) -> torch.Tensor:
    """D_ba: which of an anchor's ``tokens`` a panel keeps (each with probability 1 - dropout)."""
    generator = torch.Generator("cpu").manual_seed(dropout_seed(panel_seed, step, layer, anchor))
    return torch.rand(tokens, generator=generator) >= dropout


def anchor_bias(allowed: torch.Tensor, shift: float, dtype) -> torch.Tensor:
    """The bias of anchor columns: ``shift`` where allowed, -inf elsewhere (any shape)."""
    bias = torch.full(allowed.shape, float("-inf"), dtype=dtype, device=allowed.device)
    return bias.masked_fill_(allowed, shift)


@dataclass
class CharacterState:
    """What the character layers of one run share, step to step."""

    rows: dict[int, MappedRow]
    """Run row number -> its characters, for every anchor and every panel naming characters."""
    anchors: list[int]
    """The anchors' run row numbers, by anchor index."""
    anchor_names: list[str]
    layers: dict[str, int]
    """Character layers: processor name -> its index among the self-attention layers."""
    dropout: float
    shift: float
    call_rows: list[int] = field(default_factory=list)
    """The run rows of the UNet call under way, per CFG half (set by ``denoise.eps_of_rows``)."""
    step: int = 0
    masks: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    """Run row -> name -> its latest mask at the deepest grid (an anchor's: used this step)."""
    recorded: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """Character layer -> the anchors' keys and values after AdaIN, (halves, A, heads, N, d)."""
    _maps: dict[int, list] = field(default_factory=dict)
    _grids: dict[tuple, torch.Tensor] = field(default_factory=dict)

    # -- the step and the calls ---------------------------------------------------------------
    def begin_step(self, step: int) -> None:
        self.step = step

    def begin_call(self, rows: Sequence[int]) -> None:
        """A UNet call of these rows starts (a retried call starts its rows' maps again)."""
        self.call_rows = list(rows)
        for row in self.call_rows:
            self._maps.pop(row, None)

    def end_step(self) -> None:
        """The step's maps become masks (the anchors' for the next step)."""
        for row, (total, layers) in self._maps.items():
            mapped = self.rows[row]
            grid = grid_of(total.shape[-1], *mapped.latent)
            averaged = (total / layers).cpu().numpy()
            self.masks[row] = {name: subject_mask(averaged[c].reshape(grid)).astype(np.uint8)
                               for c, name in enumerate(mapped.names)}
        self._maps.clear()
        self._grids.clear()

    # -- the subject maps (cross-attention) -----------------------------------------------------
    def wanted_rows(self, batch: int) -> list[tuple[int, int, tuple[tuple[int, ...], ...]]]:
        """(batch position, run row, tokens per name) of the call's rows that need maps, in the
        conditional half (the last)."""
        if not self.call_rows or batch % len(self.call_rows):
            return []
        base = batch - len(self.call_rows)
        return [(base + j, row, self.rows[row].tokens) for j, row in enumerate(self.call_rows)
                if row in self.rows and self.rows[row].mapped]

    def add_map(self, row: int, maps: torch.Tensor) -> None:
        total, layers = self._maps.get(row, (0, 0))
        self._maps[row] = (maps + total, layers + 1)

    # -- the shared attention ----------------------------------------------------------------------
    def applies(self, layer: str) -> bool:
        """Whether a character layer shares anchors at this step (not at step 0: no masks yet)."""
        return layer in self.layers and self.step > 0 and any(row in self.masks for row in self.anchors)

    def attend(self, layer: str, q, k, v, reference, scale: float, mode: str, references: int,
               plain: Callable) -> torch.Tensor:
        """Attention of the call's panel rows (q, k, v after AdaIN: (halves, m, heads, n, d)).

        ``plain(q, k, v)`` is the section-4 attention of some of those rows; ``reference`` the
        layer's :class:`~.attention.ReferenceAttention`; ``references``: the call's reference
        rows in ``record`` mode (they come first and are not among q, k, v)."""
        rows = self.call_rows[references:] if mode == "record" else self.call_rows
        positions = [j for j, row in enumerate(rows) if self.rows.get(row) and self.rows[row].anchor is not None]
        if positions:
            if len(positions) != len(self.anchors):
                raise RuntimeError("the anchors run in one UNet call of their own")
            self.recorded[layer] = (k[:, positions], v[:, positions])  # copies (indexed by a list)
        anchor_key, anchor_value = self.recorded[layer]
        allowed = self._allowed(layer, rows, anchor_key.shape[-2], q.device)
        sharing = [j for j in range(len(rows)) if allowed[j].any()]
        if not sharing:
            return plain(q, k, v)
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        alone = [j for j in range(len(rows)) if j not in sharing]
        if alone:
            out[:, alone] = plain(q[:, alone], k[:, alone], v[:, alone])
        out[:, sharing] = self._shared(q[:, sharing], k[:, sharing], v[:, sharing], reference,
                                       anchor_key, anchor_value, allowed[sharing], scale)
        return out

    def _shared(self, q, k, v, reference, anchor_key, anchor_value, allowed, scale) -> torch.Tensor:
        """[own ; s K_refs ; all anchors' tokens] with the bias form (-inf where not allowed)."""
        halves, m, heads, n, d = q.shape
        anchors_tokens = anchor_key.shape[1] * anchor_key.shape[-2]
        keys, values, biases = [k], [v], [torch.zeros(m, n, dtype=q.dtype, device=q.device)]
        if reference.key is not None:
            n_ref = reference.key.shape[-2]
            keys.append(reference.key.expand(halves, m, heads, n_ref, d))
            values.append(reference.value.expand(halves, m, heads, n_ref, -1))
            ref_bias = torch.zeros(n_ref, dtype=q.dtype, device=q.device)
            if reference.bias is not None:
                ref_bias = torch.tensor(reference.bias, dtype=q.dtype, device=q.device).repeat_interleave(
                    n_ref // len(reference.bias))
            biases.append(ref_bias.expand(m, n_ref))
        flat = (anchor_key.transpose(1, 2).reshape(halves, 1, heads, anchors_tokens, d)
                .expand(halves, m, heads, anchors_tokens, d))
        keys.append(flat)
        values.append(anchor_value.transpose(1, 2).reshape(halves, 1, heads, anchors_tokens, -1)
                      .expand(halves, m, heads, anchors_tokens, -1))
        biases.append(anchor_bias(allowed.reshape(m, anchors_tokens), self.shift, q.dtype))
        bias = torch.cat(biases, dim=-1).view(1, m, 1, 1, -1).expand(halves, m, 1, 1, -1).flatten(0, 1)
        out = torch.nn.functional.scaled_dot_product_attention(
            q.flatten(0, 1), torch.cat(keys, dim=-2).flatten(0, 1), torch.cat(values, dim=-2).flatten(0, 1),
            attn_mask=bias, dropout_p=0.0, scale=scale)
        return out.view(halves, m, heads, n, -1)

    def _allowed(self, layer: str, rows: Sequence[int], tokens: int, device) -> torch.Tensor:
        """(rows, anchors, tokens) bool: which anchor tokens each row sees at this layer. An
        anchor: the other anchors of its character, inside their masks; a panel: the anchors of
        the characters it names, inside their masks and kept by its dropout."""
        masks = self._anchor_masks(tokens)
        allowed = torch.zeros(len(rows), len(self.anchors), tokens, dtype=torch.bool)
        for j, row in enumerate(rows):
            mapped = self.rows.get(row)
            if mapped is None:
                continue
            for a, name in enumerate(self.anchor_names):
                if name not in mapped.names or a == mapped.anchor:
                    continue
                allowed[j, a] = masks[a]
                if mapped.anchor is None:
                    allowed[j, a] &= dropout_keep(mapped.seed, self.step, self.layers[layer], a, tokens, self.dropout)
        return allowed.to(device)

    def _anchor_masks(self, tokens: int) -> torch.Tensor:
        """(anchors, tokens) bool: each anchor's mask resized to a layer of ``tokens`` tokens."""
        key = (tokens,)
        if key not in self._grids:
            rows = []
            for a, row in enumerate(self.anchors):
                mapped = self.rows[row]
                mask = self.masks.get(row, {}).get(self.anchor_names[a])
                if mask is None:
                    rows.append(torch.zeros(tokens, dtype=torch.bool))
                    continue
                grid = grid_of(tokens, *mapped.latent)
                rows.append(torch.from_numpy(resize_nearest(mask.astype(bool), *grid).ravel().copy()))
            self._grids[key] = torch.stack(rows)
        return self._grids[key]


def install_characters(installation, pipe, request, rows, windowed: set = frozenset()) -> CharacterState | None:
    """A run's character state (None without characters) on an installation's shared layers,
    and the subject maps on the deepest cross-attention layers (``Installation.remove`` puts
    the old processors back); ``windowed``: the sizes drawn as MultiDiffusion windows."""
    if not rows.anchors:
        return None
    from .install import self_attention_names

    unet, settings = installation.unet, request.settings
    state = CharacterState(mapped_rows(pipe, request, rows, windowed), [n for n, row in enumerate(rows.rows) if row.role == "anchor"],
                           [row.source.character for row in rows.anchors],
                           character_layers(installation.shared_layers, settings.character_layers,
                                            self_attention_names(unet)),
                           settings.character_dropout, settings.character_shift)
    installation.state.characters = state
    processors = dict(unet.attn_processors)
    for name in deepest_cross_attention_names(unet):
        processors[name] = SubjectMapProcessor(processors[name], state, name)
    unet.set_attn_processor(processors)
    return state


def mapped_rows(pipe, request, rows, windowed=frozenset()) -> dict[int, MappedRow]:
    """Every anchor and every panel naming characters, with its subject tokens."""
    from .characters import row_subject_tokens
    from .limits import CLIP_TOKENS

    tokenizer = pipe.tokenizer if pipe.tokenizer is not None else pipe.tokenizer_2
    limit = min(tokenizer.model_max_length, CLIP_TOKENS)
    mapped = {}
    for number, row in enumerate(rows.rows):
        if not row.names:
            continue
        anchor = row.source.character if row.role == "anchor" else None
        text = row.prompt if anchor else row.source.prompt
        tokens = row_subject_tokens(tokenizer, text, row.names, request.characters, anchor, limit)
        width, height = row.size
        mapped[number] = MappedRow(row.names, tuple(tokens[name] for name in row.names),
                                   (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor), row.seed,
                                   row.position if anchor else None, bool(anchor) or row.size not in windowed)
    return mapped


def character_layers(shared: Sequence[str], which: str, self_attention: Sequence[str]) -> dict[str, int]:
    """The shared self-attention layers where panels see anchors (``up``: the up blocks'; ``all``),
    with each one's index among the UNet's self-attention layers."""
    index = {name: i for i, name in enumerate(self_attention)}
    return {name: index[name] for name in shared if which == "all" or name.startswith("up_blocks.")}
