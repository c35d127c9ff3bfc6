"""FETCH items (attributes, ``BODY[section]``, BINARY, PREVIEW), the FETCH macros and
the FETCH command (RFC 9051 §6.4.5, RFC 3516, RFC 7162, RFC 8970).

Part of the command vocabulary of ``commands.py``, which re-exports every name here;
its field conventions apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from merpati.wire.imap.seqset import SequenceSet

__all__ = [
    "FETCH_MACROS",
    "Fetch",
    "FetchAttr",
    "FetchBinary",
    "FetchBinarySize",
    "FetchBody",
    "FetchItem",
    "FetchPreview",
    "Section",
]

@dataclass(frozen=True, slots=True)
class FetchAttr:
    """An item without section: FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY,
    BODYSTRUCTURE, UID, MODSEQ (RFC 7162), SAVEDATE (RFC 8514), RFC822, RFC822.HEADER,
    RFC822.TEXT (IMAP4rev1), EMAILID, THREADID (RFC 8474). ``name`` upper-cased."""

    name: str


@dataclass(frozen=True, slots=True)
class Section:
    """A ``BODY[...]`` section (RFC 9051 §6.4.5).

    * ``part``: part numbers (``()`` for the whole message).
    * ``text``: None, ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``, ``TEXT`` or
      ``MIME`` (MIME only with a part number).
    * ``fields``: upper-cased header names for HEADER.FIELDS(.NOT).
    * ``spec``: the canonical text between the brackets (``1.2.HEADER.FIELDS (FROM TO)``),
      to echo in the response and to hand to ``merpati.mime.section.extract_section``.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        out = ".".join(str(p) for p in self.part)
        if self.text is not None:
            out = out + "." + self.text if out else self.text
            if self.fields:
                out += " (" + " ".join(self.fields) + ")"
        return out


@dataclass(frozen=True, slots=True)
class FetchBody:
    """BODY[section]<origin.count> and BODY.PEEK[...]. ``partial`` is (origin, count) or
    None. Answer with ``BODY[spec]<origin>`` (origin only). Without ``peek`` it sets \\Seen."""

    section: Section
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True, slots=True)
class FetchBinary:
    """BINARY[part]<partial> and BINARY.PEEK (RFC 3516): decoded content of ``part``."""

    part: tuple[int, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True, slots=True)
class FetchBinarySize:
    """BINARY.SIZE[part] (RFC 3516)."""

    part: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchPreview:
    """PREVIEW [(LAZY)] (RFC 8970)."""

    lazy: bool = False


FetchItem = FetchAttr | FetchBody | FetchBinary | FetchBinarySize | FetchPreview

FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
"""Macro expansions (RFC 9051 §6.4.5); the parser expands them into ``FetchAttr`` items."""


@dataclass(frozen=True, slots=True)
class Fetch:
    """[UID] FETCH set items [(CHANGEDSINCE n [VANISHED])] (RFC 9051 §6.4.5, RFC 7162).

    ``items`` has macros expanded, in the client's order (duplicates kept). ``macro`` is
    the macro name when one was used. For ``uid=True`` the answer must include UID even
    when not asked (RFC 9051 §6.4.9); with CHANGEDSINCE it must include MODSEQ.
    ``vanished`` is only valid with ``uid`` and ``changedsince`` (the engine checks).
    """

    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    uid: bool = False
    changedsince: int | None = None
    vanished: bool = False
    macro: str | None = None
