"""Fetching one large file over HTTP: its size by HEAD, resumed retries, md5 checks, and
failures as :class:`DownloadError` subclasses that say what to do (book chapter 9).

:mod:`minternet.transfer` makes one attempt; :func:`fetch` retries it, resuming the kept
``.part`` file, and turns what went wrong into a message naming the file and the URL.
:mod:`minternet.download` fetches the release's parts with it.
"""

from __future__ import annotations

import errno
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from minternet import transfer

TIMEOUT = 60.0
"""Seconds allowed to connect and for each read stall."""


class DownloadError(RuntimeError):
    """A fetch, check, unpacking or verification step failed; the message names the file."""


class MissingFileError(DownloadError):
    """The server does not have a file (HTTP 403 or 404)."""


class TransferError(DownloadError):
    """A transfer failed, after every retry for a download."""


class CorruptFileError(DownloadError):
    """A file's md5 differs from the checksum file's; the file was deleted."""


class DiskFullError(DownloadError):
    """Not enough free space, found before starting or while writing."""


def _http_failure(err: urllib.error.HTTPError, url: str) -> DownloadError | None:
    """:class:`MissingFileError` for HTTP 403/404 (S3 answers 403 for a missing key)."""
    if err.code in (403, 404):
        return MissingFileError(f"{url}: not on the server (HTTP {err.code})")
    return None


def remote_size(url: str, timeout: float = TIMEOUT) -> int | None:
    """Bytes at ``url`` per an HTTP HEAD's Content-Length (None when the server omits it)."""
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
    except urllib.error.HTTPError as err:
        raise _http_failure(err, url) or TransferError(f"{url}: HTTP {err.code}") from None
    except (OSError, HTTPException) as err:
        raise TransferError(f"{url}: cannot reach the server ({err})") from None
    return int(length) if length is not None else None


def fetch(url: str, dest: Path, md5: str | None, *, retries: int = 5, backoff: float = 2.0,
          timeout: float = TIMEOUT, progress: bool = True, size: int | None = None,
          deadline: float | None = None) -> Path:
    """``url`` -> ``dest``, md5-checked, resuming ``dest``'s ``.part`` file on each retry
    (``retries`` after the first attempt, ``backoff`` x attempt seconds apart). ``size`` and
    ``deadline`` (a :func:`time.monotonic` value) as in :func:`minternet.transfer.download`."""
    failure: BaseException | None = None
    for attempt in range(retries + 1):
        time.sleep(backoff * attempt)
        try:
            return transfer.download(url, dest, md5=md5, resume=True, timeout=timeout,
                                     progress=progress, size=size, deadline=deadline)
        except transfer.TransferLimitError as err:
            partial = transfer.partial_path(dest)
            kept = partial.stat().st_size if partial.exists() else 0
            raise TransferError(f"{err}; {kept} bytes kept in {partial}, run again (with a "
                                "longer --deadline if it ran out) to resume") from None
        except transfer.ChecksumError as err:
            raise CorruptFileError(
                f"{dest.name}: md5 {err.actual} differs from {err.expected} in the checksum "
                f"file; the download from {url} was deleted, run again to fetch it anew") from None
        except urllib.error.HTTPError as err:
            if missing := _http_failure(err, url):
                raise missing from None
            if err.code == 416:  # the kept bytes are not a prefix of the file: start over
                transfer.partial_path(dest).unlink(missing_ok=True)
            failure = err
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise DiskFullError(f"{dest}: disk full while downloading {url}; free some "
                                    "space and run again, the partial file is kept") from None
            failure = err
        except HTTPException as err:
            failure = err
    partial = transfer.partial_path(dest)
    kept = partial.stat().st_size if partial.exists() else 0
    raise TransferError(f"{url}: transfer failed {retries + 1} times (last: {failure!r}); "
                        f"{kept} bytes kept in {partial}, run again to resume") from failure
