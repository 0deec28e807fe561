"""POSIX/GNU tar streams: every header's checksum, member data and padding, and the end-of-archive marker.

Extended (pax ``x``) headers are parsed record by record with bounded memory: a ``size`` record
overrides the ustar size field (GNU tar writes members of 8 GiB and more that way, with 0 in the
field), and the ``GNU.sparse.*`` records say a member is a sparse file. Sparse members are checked
in each of GNU tar's formats:

- PAX 1.0 (what the files engine writes, ``--sparse-version=1.0``): the member's data starts with
  its sparse map, decimal numbers one per line (the region count, then offset and size of each
  region) padded with NULs to a block boundary; the regions must be in order, inside
  ``GNU.sparse.realsize``, and map plus regions must fill the member's stored size exactly.
- PAX 0.0/0.1: the map lives in the extended header; its real size (``GNU.sparse.size``) is counted,
  the map itself is not cross-checked.
- old GNU (type ``S``): the map in the header and its extension blocks (which follow the header and
  are not part of the stored size); the regions must add up to the stored size.

A stream cut anywhere, in a sparse map or in a member's data, ends mid-record and is rejected.
``file_bytes`` counts the files' apparent sizes (a sparse file's real size, holes included), as a
restored tree reports them; ``sparse_files`` counts the sparse members.
"""

from __future__ import annotations

from collections.abc import Generator

from backup_agent.engines.base import InvalidDumpError
from backup_agent.engines.validators._parsing import AT_BOUNDARY, Parser, ParsingValidator, Skip

Step = Generator[object, bytes | None, None]

_PAX_WINDOW = 64 * 1024  # pax header data is parsed this much at a time; longer records are skipped
_PAX_KEPT = frozenset(
    {"size", "GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.realsize", "GNU.sparse.size", "GNU.sparse.map"}
)
_MAX_NUMBER_DIGITS = 20
_FILE_TYPES = (b"0", b"\0", b"7")
_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, directories, fifos
_LOW_BYTES = bytes(range(128))


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


def _decimal(text: str | bytes, what: str) -> int:
    digits = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if not digits.isdigit() or len(digits) > _MAX_NUMBER_DIGITS:
        raise InvalidDumpError(f"bad {what}")  # never the text: it may be a member's data
    return int(digits)


def _checksum_ok(header: bytes) -> bool:
    """The header's checksum, summed as unsigned bytes or (old writers) as signed ones."""
    stored = _tar_number(header[148:156])
    unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
    if stored == unsigned:
        return True
    high = len(header[:148].translate(None, _LOW_BYTES)) + len(header[156:].translate(None, _LOW_BYTES))
    return stored == unsigned - 256 * high


class TarValidator(ParsingValidator):
    name = "tar archive"

    def __init__(self) -> None:
        self.members = 0
        self.files = 0
        self.dirs = 0
        self.file_bytes = 0
        self.sparse_files = 0
        super().__init__()

    def _parse(self) -> Parser:
        pax: dict[str, str] = {}  # the records of the extended header that applies to the next member
        while True:
            header = yield 512
            assert header is not None  # noqa: S101
            if header == bytes(512):
                yield from self._end_of_archive()
            if not _checksum_ok(header):
                raise InvalidDumpError(f"tar header checksum mismatch at member {self.members + 1}")
            typeflag = header[156:157]
            size = _tar_number(header[124:136])
            if size < 0:
                raise InvalidDumpError("negative member size")
            if typeflag == b"x":
                pax = yield from self._pax_records(size)
                continue
            if typeflag in (b"g", b"L", b"K"):
                yield from self._skip(size)
                continue
            if "size" in pax:
                size = _decimal(pax["size"], "pax size")
            self.members += 1
            if typeflag == b"5":
                self.dirs += 1
            elif typeflag in _FILE_TYPES and pax.get("GNU.sparse.major") == "1":
                yield from self._sparse_1_0(size, pax)
                size = 0  # the map and the regions were consumed
            elif typeflag in _FILE_TYPES and _is_sparse_0(pax):
                self._count_file(_decimal(pax["GNU.sparse.size"], "GNU.sparse.size"), sparse=True)
            elif typeflag in _FILE_TYPES:
                self._count_file(size, sparse=False)
            elif typeflag == b"S":
                yield from self._old_gnu_sparse(header, size)
            pax = {}
            # links, devices, directories and fifos carry no data whatever their size field says
            if typeflag not in _NO_DATA_TYPES:
                yield from self._skip(size)

    def _count_file(self, apparent_size: int, *, sparse: bool) -> None:
        self.files += 1
        self.file_bytes += apparent_size
        self.sparse_files += 1 if sparse else 0

    @staticmethod
    def _skip(size: int) -> Step:
        if size:
            yield Skip(size + (-size % 512))

    @staticmethod
    def _end_of_archive() -> Step:
        second = yield 512
        if second != bytes(512):
            raise InvalidDumpError("a single zero block is not an end-of-archive marker")
        # end of archive; the rest of the record must be zero padding
        while True:
            yield AT_BOUNDARY
            pad = yield 512
            if pad != bytes(512):
                raise InvalidDumpError("non-zero data after the end-of-archive marker")

    def _pax_records(self, size: int) -> Generator[object, bytes | None, dict[str, str]]:
        """The kept records of one extended header, read ``_PAX_WINDOW`` bytes at a time."""
        found: dict[str, str] = {}
        left = size  # bytes of the header's data not yet requested
        buf = b""
        while True:
            pos = 0
            while (space := buf.find(b" ", pos, pos + _MAX_NUMBER_DIGITS + 1)) >= 0:
                length = _decimal(buf[pos:space], "pax record length")
                end = pos + length
                if length <= space - pos + 1:
                    raise InvalidDumpError(f"bad pax record length {length}")
                if end > len(buf):
                    if length <= _PAX_WINDOW:
                        break  # the rest of the record comes with the next window
                    rest = end - len(buf)  # a long record (a path, an ACL): passed over, not kept
                    if rest > left:
                        raise InvalidDumpError("a pax record runs past the end of its extended header")
                    left -= rest
                    yield Skip(rest)
                    pos = end = len(buf)
                    break
                key, equals, value = buf[space + 1 : end].partition(b"=")
                if not equals or not value.endswith(b"\n"):
                    raise InvalidDumpError("malformed pax record")
                name = key.decode("utf-8", "replace")
                if name in _PAX_KEPT:
                    found[name] = value[:-1].decode("ascii", "replace")
                pos = end
            else:
                if len(buf) - pos > _MAX_NUMBER_DIGITS:
                    raise InvalidDumpError("bad pax record length")
            buf = buf[pos:]
            if not left:
                break
            take = min(left, _PAX_WINDOW)
            data = yield take
            assert data is not None  # noqa: S101
            left -= take
            buf += data
        if buf.strip(b"\0"):
            raise InvalidDumpError("truncated pax record at the end of an extended header")
        if -size % 512:
            yield Skip(-size % 512)
        return found

    def _sparse_1_0(self, size: int, pax: dict[str, str]) -> Step:
        """A PAX 1.0 sparse member: the map (whole blocks) then the regions, ``size`` bytes in all."""
        if "GNU.sparse.realsize" not in pax:
            raise InvalidDumpError(f"sparse member {self.members} has no GNU.sparse.realsize")
        realsize = _decimal(pax["GNU.sparse.realsize"], "GNU.sparse.realsize")
        numbers: list[int] = []  # the count, then one (offset, size) pair at a time
        count: int | None = None
        regions = stored = end = map_bytes = 0
        partial = b""
        while count is None or regions < count:
            if map_bytes + 512 > size:
                raise InvalidDumpError(f"the sparse map of member {self.members} is longer than the member")
            block = yield 512
            assert block is not None  # noqa: S101
            map_bytes += 512
            *lines, partial = (partial + block).split(b"\n")
            if len(partial) > _MAX_NUMBER_DIGITS and partial.strip(b"\0"):
                raise InvalidDumpError(f"bad number in the sparse map of member {self.members}")
            for line in lines:
                if count is not None and regions == count:
                    raise InvalidDumpError(f"the sparse map of member {self.members} has more entries than it says")
                numbers.append(_decimal(line, "sparse map entry"))
                if count is None:
                    count, numbers = numbers[0], []
                elif len(numbers) == 2:
                    offset, length = numbers
                    numbers = []
                    if offset < end or offset + length > realsize:
                        raise InvalidDumpError(f"the sparse map of member {self.members} is out of order or size")
                    end, stored, regions = offset + length, stored + length, regions + 1
            if count is not None and regions == count and partial.strip(b"\0"):
                raise InvalidDumpError(f"data after the sparse map of member {self.members}")
        if map_bytes + stored != size:
            raise InvalidDumpError(
                f"sparse member {self.members}: map and regions are {map_bytes + stored} bytes, the header says {size}"
            )
        self._count_file(realsize, sparse=True)
        yield from self._skip(stored)

    def _old_gnu_sparse(self, header: bytes, size: int) -> Step:
        """An old GNU sparse member: four map entries in the header, more in extension blocks after it."""
        stored = sum(_tar_number(header[pos + 12 : pos + 24]) for pos in range(386, 482, 24))
        extended = header[482]
        while extended:
            block = yield 512
            assert block is not None  # noqa: S101
            stored += sum(_tar_number(block[pos + 12 : pos + 24]) for pos in range(0, 504, 24))
            extended = block[504]
        if stored != size:
            raise InvalidDumpError(
                f"sparse member {self.members}: its regions are {stored} bytes, the header says {size}"
            )
        self._count_file(_tar_number(header[483:495]), sparse=True)

    def _facts(self) -> dict[str, object]:
        return {
            "members": self.members,
            "files": self.files,
            "dirs": self.dirs,
            "file_bytes": self.file_bytes,
            "sparse_files": self.sparse_files,
        }


def _is_sparse_0(pax: dict[str, str]) -> bool:
    return "GNU.sparse.size" in pax and pax.get("GNU.sparse.major", "0") == "0"
