"""Message bodies, for ``SmtpServer`` (a mixin): the DATA and BDAT commands, reading a
DATA body up to CRLF.CRLF and BDAT chunks by their size (including the octets of a
refused BDAT), and the state changes after the session answers ``DataStart``/``DataEnd``.
The body invariants are in the docstring of ``server.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from merpati.wire.smtp import replies as R
from merpati.wire.smtp.codes import Code, Enhanced
from merpati.wire.smtp.commands import parse_bdat
from merpati.wire.smtp.data import ChunkReader, DotReader
from merpati.wire.smtp.events import (
    NEED_DATA,
    Close,
    CloseReason,
    DataChunk,
    DataEnd,
    DataStart,
    Event,
    MailFrom,
    Sentinel,
)
from merpati.wire.smtp.limits import BareLineEndings, Extension, SmtpLimits
from merpati.wire.smtp.reply import Reply, SmtpReplyError
from merpati.wire.smtp.tables import ALLOWED, Command, State

__all__ = ["BodyReading", "Result"]

Result = Event | Sentinel | None  # None: something was answered, keep reading
_DATA_START = DataStart(bdat=False)  # constant and frozen: one shared instance


class BodyReading:
    """The body half of the engine; the state lives in ``SmtpServer``'s attributes."""

    # SmtpServer's state and helpers this mixin uses (declared for type checkers only).
    limits: SmtpLimits
    extensions: frozenset[Extension]
    bare_line_endings: BareLineEndings
    require_tls: bool
    error_count: int
    _tls_active: bool
    _buf: bytearray
    _eof: bool
    _state: State
    _close: Close | None
    _mail: MailFrom | None
    _reader: DotReader | None
    _bdat_total: int
    _chunk: ChunkReader | None
    _chunk_reply: Reply | None
    _chunk_return: State

    if TYPE_CHECKING:
        @property
        def extended(self) -> bool: ...
        @property
        def pipelining(self) -> bool: ...
        def _reply(self, reply: Reply) -> None: ...
        def _close_with(self, reason: str, reply: Reply | None = None) -> Close: ...
        def _sequence_error(self, command: Command) -> Reply: ...
        def _reset_transaction(self) -> None: ...

    # ---- commands -----------------------------------------------------------------------
    def _cmd_data(self, arg: bytes) -> Result:
        # RFC 5321 §4.1.1.4; RFC 3030 §3: BINARYMIME bodies only by BDAT
        if arg:
            raise SmtpReplyError(R.NO_ARGUMENTS)
        if self._mail is not None and self._mail.params.body == "BINARYMIME":
            raise SmtpReplyError(R.BINARYMIME_NEEDS_BDAT)
        return _DATA_START

    def _cmd_bdat(self, arg: bytes) -> Result:
        # RFC 3030 §2; the size is needed even to refuse: the octets must be consumed
        parsed = parse_bdat(arg, self.limits)
        if parsed is None:
            return self._close_with(CloseReason.PROTOCOL_ERROR, R.BDAT_SYNTAX)
        size, last = parsed
        if self._bdat_total + size > self.limits.message_size:
            return self._close_with(CloseReason.PROTOCOL_ERROR, R.TOO_BIG)
        refusal = self._bdat_refusal()
        if refusal is not None:
            self._discard_chunk(ChunkReader(size, last=last, emit=False), refusal, self._state)
            return None
        self._chunk = ChunkReader(size, last=last, emit=True)
        if self._state is State.RCPT:
            return DataStart(bdat=True)
        self._state = State.CHUNK
        return None

    def _bdat_refusal(self) -> Reply | None:
        if self.require_tls and not self._tls_active:
            return R.TLS_REQUIRED
        if not self.extended or Extension.CHUNKING not in self.extensions:
            return R.BDAT_NOT_OFFERED
        if Command.BDAT not in ALLOWED[self._state]:
            return self._sequence_error(Command.BDAT)
        return None

    def _discard_chunk(self, chunk: ChunkReader, reply: Reply | None, then: State) -> None:
        self._chunk = chunk
        self._chunk_reply = reply
        self._chunk_return = then
        self._state = State.CHUNK

    # ---- body readers -------------------------------------------------------------------
    def _read_data(self) -> Result:
        reader = self._reader
        assert reader is not None
        out = reader.feed(self._buf)
        if out:
            return DataChunk(out)
        if reader.done:
            return DataEnd(reader.error, reader.size)
        if self._eof:
            return self._close_with(CloseReason.EOF_IN_DATA)
        return NEED_DATA

    def _read_chunk(self) -> Result:
        chunk = self._chunk
        assert chunk is not None
        if not chunk.done:
            data = chunk.feed(self._buf)
            if data:
                self._bdat_total += len(data)
                return DataChunk(data)
            if not chunk.done:
                return self._close_with(CloseReason.EOF_IN_DATA) if self._eof else NEED_DATA
        if not chunk.emit:
            self._chunk = None
            self._state = self._chunk_return
            if self._chunk_reply is not None:
                self._reply(self._chunk_reply)
                self._chunk_reply = None
            return None
        if chunk.last:
            return DataEnd(None, self._bdat_total)
        if self._buf and not self.pipelining:
            return self._close_with(CloseReason.SYNC_ERROR, R.SYNC_ERROR)
        self._state = State.BDAT
        self._reply(Reply(Code.OK, Enhanced.OK, f"{chunk.size} octets received"))  # RFC 3030 §4.2
        return None

    # ---- after the session's reply (True: write the reply as is) ------------------------
    def _after_data_start(self, event: DataStart, reply: Reply) -> bool:
        if not event.bdat:
            if reply.is_success:
                normalize = self.bare_line_endings is BareLineEndings.NORMALIZE
                self._reader = DotReader(normalize=normalize, max_size=self.limits.message_size)
                self._state = State.DATA
            return True
        if reply.is_success:
            self._state = State.CHUNK
            return False  # BDAT needs no intermediate reply: the chunk's reply comes later
        chunk = self._chunk
        assert chunk is not None
        self._reset_transaction()
        self._discard_chunk(ChunkReader(chunk.size, last=chunk.last, emit=False), None, State.READY)
        return True

    def _after_data_end(self, event: DataEnd, reply: Reply) -> bool:
        self._reset_transaction()
        self._state = State.READY
        if reply.is_success:
            self.error_count = 0
        self._reply(reply)
        if self._buf and not self.pipelining and self._close is None:
            self._close_with(CloseReason.SYNC_ERROR, R.SYNC_ERROR)
        return False
