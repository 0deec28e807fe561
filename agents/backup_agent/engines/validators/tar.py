"""POSIX/GNU tar streams: every header's checksum, member data and padding, and the end-of-archive marker."""

from __future__ import annotations

from backup_agent.engines.base import InvalidDumpError
from backup_agent.engines.validators._parsing import AT_BOUNDARY, Parser, ParsingValidator, Skip


def _tar_number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field, "big")
        return value & ~(0x80 << (8 * (len(field) - 1)))
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as exc:
        raise InvalidDumpError(f"bad octal number {text!r} in tar header") from exc


class TarValidator(ParsingValidator):
    name = "tar archive"

    def __init__(self) -> None:
        self.members = 0
        self.files = 0
        self.dirs = 0
        self.file_bytes = 0
        super().__init__()

    def _parse(self) -> Parser:
        while True:
            header = yield 512
            assert header is not None  # noqa: S101
            if header == bytes(512):
                second = yield 512
                if second != bytes(512):
                    raise InvalidDumpError("a single zero block is not an end-of-archive marker")
                # end of archive; the rest of the record must be zero padding
                while True:
                    yield AT_BOUNDARY
                    pad = yield 512
                    if pad != bytes(512):
                        raise InvalidDumpError("non-zero data after the end-of-archive marker")
            stored = _tar_number(header[148:156])
            unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
            signed = sum(b - 256 if b > 127 else b for b in header[:148]) + 8 * 32
            signed += sum(b - 256 if b > 127 else b for b in header[156:])
            if stored not in (unsigned, signed):
                raise InvalidDumpError(f"tar header checksum mismatch at member {self.members + 1}")
            typeflag = header[156:157]
            size = _tar_number(header[124:136])
            if size < 0:
                raise InvalidDumpError("negative member size")
            # links, devices, directories and fifos carry no data whatever their size field says
            size_to_skip = 0 if typeflag in (b"1", b"2", b"3", b"4", b"5", b"6") else size
            if typeflag not in (b"x", b"g", b"L", b"K"):
                self.members += 1
                if typeflag in (b"0", b"\0", b"7"):
                    self.files += 1
                    self.file_bytes += size
                elif typeflag == b"5":
                    self.dirs += 1
            if size_to_skip:
                yield Skip(size_to_skip + (-size_to_skip % 512))

    def _facts(self) -> dict[str, object]:
        return {"members": self.members, "files": self.files, "dirs": self.dirs, "file_bytes": self.file_bytes}
