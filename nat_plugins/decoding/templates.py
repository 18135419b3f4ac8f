"""Target templates for infilling (SUNDAE §2.2 "Target-side infilling"; Mask-Predict; SUNMASK §2.3).

A template is the target sentence with fixed tokens and gaps:

* ordinary tokens are **fixed**: they stand at their place in every output and
  are never re-masked (Mask-Predict) nor resampled (SUNDAE, SUNMASK);
* ``<blank>`` is one free position: ``<blank> <blank> <blank>`` is a gap of exactly 3 tokens;
* ``<gap>`` is a free span whose width the model chooses: each length candidate
  ``L`` of the length beam (``--length-beam``) gives the gaps ``max(G, L - F)``
  positions in all (``F`` fixed tokens and blanks, ``G`` gaps), split evenly
  (earlier gaps take the remainder, at least one position each: our rule), and the
  candidates are reranked as usual.  Without ``<gap>`` the width is the template's.

Where templates come from (``--decode-templates``, documented in the README):

* ``inline`` (``fairseq-interactive``): an input line is ``SOURCE ||| TEMPLATE``;
  the template's text goes through the target's tokenizer/BPE piece by piece
  between the markers.  A line without ``|||`` is translated freely;
* a file path (``fairseq-generate``): line ``i`` is the template of sentence id ``i``
  of ``--gen-subset``, already tokenized like the binarized data; an empty line
  means a free translation.

Width rules on canvases with an end symbol (SUNDAE, SUNMASK: ``<eos>`` end padding,
:mod:`nat_plugins.models.sundae`): canvas positions past the template are pinned to
``<eos>`` and a free position never takes ``<eos>`` (a proposed ``<eos>`` keeps the
previous token; the prior draws free positions without it), so the output has
exactly the template's width.  This is our reading of §2.2 for a length-conditioned
canvas; the paper infills fixed-width spans of unconditional text.
"""
import re
from typing import List, Optional, Sequence

import torch

from ..errors import NATUserError

__all__ = ["BLANK", "GAP", "MARKERS", "parse_template", "resolve_template", "TemplateBatch", "split_inline",
           "respect_template", "check_width", "INLINE_SEPARATOR", "TemplateSource"]

BLANK, GAP = -1, -2
MARKERS = {"<blank>": BLANK, "<gap>": GAP}
_MARKER_RE = re.compile(r"(<blank>|<gap>)")
INLINE_SEPARATOR = "|||"


def split_inline(line):
    """``SOURCE ||| TEMPLATE`` -> ``(source, template or None)``."""
    if INLINE_SEPARATOR not in line:
        return line, None
    source, template = line.split(INLINE_SEPARATOR, 1)
    return source.strip(), template.strip()


def parse_template(text, dictionary, encode=None):
    """Template text -> items: target token ids, :data:`BLANK` or :data:`GAP`.

    Args:
        text: e.g. ``"the <gap> sat on <blank> <blank> mat"``.
        dictionary: the target fairseq Dictionary.
        encode: optional tokenizer/BPE applied to each text piece between markers.
    """
    items = []
    for piece in _MARKER_RE.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if piece in MARKERS:
            items.append(MARKERS[piece])
            continue
        if encode is not None:
            piece = encode(piece)
        ids = dictionary.encode_line(piece, append_eos=False, add_if_not_exist=False)
        items.extend(int(i) for i in ids)
    return items


def resolve_template(items: Sequence[int], length: int):
    """Lay a template on a canvas for length candidate ``length``.

    Returns:
        ``(tokens, fixed)``: lists of equal width; free positions hold ``BLANK``.
    """
    gaps = sum(1 for i in items if i == GAP)
    tokens: List[int] = []
    if gaps:
        others = len(items) - gaps
        total = max(gaps, int(length) - others)
        widths = [total // gaps + (1 if g < total % gaps else 0) for g in range(gaps)]
    g = 0
    for item in items:
        if item == GAP:
            tokens.extend([BLANK] * widths[g])
            g += 1
        else:
            tokens.append(item)
    return tokens, [t != BLANK for t in tokens]


class TemplateBatch:
    """Resolved templates of N candidate rows: ``tokens [N, W]`` (free: -1), ``fixed [N, W]``, ``widths [N]``.

    Rows without a template have width 0 here and are left to the model.
    """

    def __init__(self, tokens, fixed, widths, active):
        self.tokens, self.fixed, self.widths, self.active = tokens, fixed, widths, active

    @classmethod
    def build(cls, templates: Sequence[Optional[Sequence[int]]], lengths: torch.Tensor):
        """``templates`` (one per row, None = free) and the rows' candidate lengths [N].

        Returns ``(batch, new_lengths [N])``: templated rows get their template's width.
        """
        rows = [resolve_template(t, int(n)) if t is not None else ([], []) for t, n in zip(templates, lengths.tolist())]
        width = max([len(r[0]) for r in rows] + [1])
        N = len(rows)
        tokens = torch.full((N, width), BLANK, dtype=torch.long)
        fixed = torch.zeros((N, width), dtype=torch.bool)
        for i, (tok, fix) in enumerate(rows):
            tokens[i, : len(tok)] = torch.tensor(tok, dtype=torch.long)
            fixed[i, : len(fix)] = torch.tensor(fix, dtype=torch.bool)
        widths = torch.tensor([len(r[0]) for r in rows], dtype=torch.long)
        active = torch.tensor([t is not None for t in templates], dtype=torch.bool)
        dev = lengths.device
        new_lengths = torch.where(active.to(dev), widths.to(dev), lengths)
        return cls(tokens.to(dev), fixed.to(dev), widths.to(dev), active.to(dev)), new_lengths

    def select(self, idx):
        return TemplateBatch(self.tokens[idx], self.fixed[idx], self.widths[idx], self.active[idx])

    def _fit(self, x, width, value):
        if x.size(1) >= width:
            return x[:, :width]
        return torch.cat([x, x.new_full((x.size(0), width - x.size(1)), value)], 1)

    def apply(self, canvas, end=None, pad=None, free_symbols=None, generator=None):
        """Write the fixed tokens into an initial ``canvas`` [N, W].

        With ``end`` (canvases with end padding): positions of a templated row past its
        template width (and not ``pad``) are pinned to ``end``, and free template positions
        holding ``end`` are redrawn from ``free_symbols`` (module docstring).

        Returns:
            ``(canvas [N, W], pinned [N, W] bool, no_end [N, W] bool)``: pinned positions never
            change; ``no_end`` marks the free template positions that may not take ``end``.
        """
        W = canvas.size(1)
        tokens, fixed = self._fit(self.tokens, W, BLANK), self._fit(self.fixed, W, False)
        pinned = fixed.clone()
        out = torch.where(fixed, tokens, canvas)
        no_end = torch.zeros_like(pinned)
        if end is not None:
            pos = torch.arange(W, device=canvas.device)[None, :]
            tail = self.active[:, None] & (pos >= self.widths[:, None])
            if pad is not None:
                tail &= canvas.ne(pad)
            out = out.masked_fill(tail, end)
            pinned |= tail
            no_end = self.active[:, None] & ~pinned & (pos < self.widths[:, None])
            redraw = no_end & out.eq(end)
            if redraw.any() and free_symbols is not None:
                choices = free_symbols[free_symbols.ne(end)]
                pick = torch.randint(0, choices.numel(), (int(redraw.sum()),), generator=generator,
                                     device=canvas.device)
                out = out.masked_scatter(redraw, choices[pick].to(out.device))
        return out, pinned, no_end


def respect_template(proposal, previous, pinned, no_end=None, end=None):
    """A step's new canvas [N, W]: ``proposal``, except that pinned positions keep ``previous``
    and, with ``end``, a ``no_end`` position that proposes ``end`` keeps ``previous`` too."""
    keep = pinned
    if end is not None and no_end is not None:
        keep = keep | (no_end & proposal.eq(end))
    return torch.where(keep, previous, proposal)


def check_width(templates: TemplateBatch, max_width: int):
    """Clear error for a template wider than the model's canvas."""
    too_wide = templates.active & (templates.widths > max_width)
    if bool(too_wide.any()):
        i = int(too_wide.nonzero()[0, 0])
        raise NATUserError(f"a target template has {int(templates.widths[i])} positions but this model's canvas "
                           f"holds at most {max_width}; shorten the template")


class TemplateSource:
    """Where the task finds each sentence's template (``--decode-templates inline|FILE``).

    ``inline``: :meth:`split_lines` takes ``SOURCE ||| TEMPLATE`` input lines apart, and
    :meth:`tag` gives each line a key that the task's inference dataset carries in its
    ``constraints`` field, the one per-sentence field ``fairseq-interactive`` passes on
    to ``inference_step`` (its batches are sorted and carry no line numbers; without
    ``--constraints`` the field is otherwise unused).  ``FILE``: line ``i`` holds the
    template of sentence id ``i``.
    """

    def __init__(self, spec, tgt_dict):
        self.spec, self.tgt_dict = spec, tgt_dict
        self.inline = spec == "inline"
        self._pending, self._by_key, self._next_key, self._file = [], {}, 1, None
        if not self.inline:
            try:
                with open(spec, encoding="utf-8") as f:
                    self._file = [line.rstrip("\n") for line in f]
            except OSError as exc:
                raise NATUserError(f"--decode-templates {spec!r}: cannot read the file ({exc.strerror}); "
                                   "give 'inline' or a file with one template per line") from exc

    def split_lines(self, lines, encode_fn):
        """Input lines -> source lines; the templates wait for :meth:`tag`."""
        sources = []
        self._pending = []
        for line in lines:
            source, text = split_inline(line)
            sources.append(source)
            self._pending.append(parse_template(text, self.tgt_dict, encode_fn) if text else None)
        return sources

    def tag(self, count):
        """``[count, 1]`` long keys (>= 1) of the last :meth:`split_lines` lines, in order."""
        if len(self._pending) != count:
            raise ValueError(f"{count} inference sentences but {len(self._pending)} template lines")
        keys = torch.arange(self._next_key, self._next_key + count, dtype=torch.long)
        self._by_key.update(zip(keys.tolist(), self._pending))
        self._next_key += count
        self._pending = []
        return keys[:, None]

    def for_sample(self, sample, keys=None):
        """One template (or None) per row of ``sample``; ``keys`` [B, 1] from :meth:`tag` (inline)."""
        if self.inline:
            if keys is None:
                raise NATUserError("--decode-templates inline reads 'SOURCE ||| TEMPLATE' lines of "
                                   "fairseq-interactive; give fairseq-generate a template file instead")
            return [self._by_key.pop(int(k), None) for k in keys[:, 0].tolist()]
        out = []
        for i in sample["id"].tolist():
            if i >= len(self._file):
                raise NATUserError(f"--decode-templates {self.spec!r} has {len(self._file)} lines but the "
                                   f"data has sentence id {i}")
            text = self._file[i].strip()
            out.append(parse_template(text, self.tgt_dict) if text else None)
        return out
