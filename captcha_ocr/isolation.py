"""Decoding in a worker process, so a decoder bug nobody has found yet costs one error reply, not the instance.

The screen (budget.py) refuses every container variant and size it knows to be costly, but Pillow,
libjpeg, libpng, libwebp and zlib are large C libraries fed bytes from the public internet: a heap
corruption kills a process, a runaway loop holds it, an allocation without bound takes the 128 MB.
So image bytes -> tensor (imaging.preprocess, the one preprocessing) runs in a child process forked
at cold start and kept for the instance's life, held to hard limits:

- memory: its address space may grow `max_decode_mb` beyond what it held when it started; past that
  an allocation fails inside the decoder, which then raises, and the image is a 413 ImageTooComplex;
- time: the request's images together get `max_decode_ms`; a worker still decoding then is killed;
- a crash (a signal, an exit, a reply that is not one): the image is a 415 UnsupportedImage.

A killed or crashed worker is replaced by a fresh fork before the reply goes out, so the next request
is served as usual. The child never writes files (no core dumps) and talks to the parent over a
socket pair in a framing of its own: a JSON header and raw bytes, never pickle, so a child a decoder
bug took over cannot make the parent run anything. Where processes cannot fork, decoding runs in
the caller's process and only the screen protects it. docs/request-budget.md gives the costs measured.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import queue
import resource
import signal
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from captcha_ocr.errors import (
    ApiError,
    DecoderCrashed,
    DecoderTimedOut,
    ImageTooComplex,
    ImageTooLarge,
    UnsupportedImage,
)
from captcha_ocr.imaging import PreparedImage, decode_rgba, preprocess
from captcha_ocr.settings import Limits

Decode = Callable[[bytes, int, int, Limits, str], PreparedImage]  # imaging.preprocess's signature
DecodePixels = Callable[[bytes, Limits], np.ndarray]  # imaging.decode_rgba's signature

_LENGTHS = struct.Struct(">II")
_MAX_HEADER_BYTES = 4_096
_MAX_MESSAGE_CHARS = 300
# what a worker may answer instead of a tensor: the screen's and the decoder's own client errors
_WORKER_ERRORS: dict[str, type[ApiError]] = {cls.code: cls for cls in (UnsupportedImage, ImageTooLarge,
                                                                       ImageTooComplex)}


class _Lost(Exception):
    """The worker is gone or unusable; `reason` says how (for the log), `timed_out` whether time ran out."""

    def __init__(self, reason: str, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.timed_out = reason, timed_out


# -- framing: (header length, payload length), the JSON header, the payload -----------------------
def _send(sock: socket.socket, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if len(payload) <= 65_536:  # one write, so a small message crosses in one wake-up of the other side
        sock.sendall(b"".join((_LENGTHS.pack(len(encoded), len(payload)), encoded, payload)))
    else:
        sock.sendall(_LENGTHS.pack(len(encoded), len(payload)) + encoded)
        sock.sendall(payload)


def _receive(sock: socket.socket, max_payload: int) -> tuple[dict[str, Any], memoryview]:
    """One message; a header or payload longer than allowed is a protocol error (ValueError)."""
    first = sock.recv(65_536 + _LENGTHS.size)
    if len(first) < _LENGTHS.size:
        first += _receive_exactly(sock, _LENGTHS.size - len(first))
    header_length, payload_length = _LENGTHS.unpack_from(first)
    if header_length > _MAX_HEADER_BYTES or payload_length > max_payload:
        raise ValueError("message too long")
    total = _LENGTHS.size + header_length + payload_length
    message = first + _receive_exactly(sock, total - len(first)) if len(first) < total else first
    if len(message) != total:
        raise ValueError("more than one message")
    header = json.loads(message[_LENGTHS.size:_LENGTHS.size + header_length])
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header, memoryview(message)[_LENGTHS.size + header_length:]


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    buffer, got = bytearray(size), 0
    view = memoryview(buffer)
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if count == 0:
            raise EOFError
        got += count
    return bytes(buffer)


# -- the child ----------------------------------------------------------------------------------
def _virtual_memory_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _hold_to_limits(limits: Limits) -> None:
    """In the child: no core files nor crash dumps, the default Ctrl-C (quietly gone with its parent),
    and an address space of what it holds now plus max_decode_mb."""
    faulthandler.disable()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    held = _virtual_memory_bytes()
    if held is not None:
        cap = held + limits.max_decode_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _serve(sock: socket.socket, limits: Limits, decode: Decode, decode_pixels: DecodePixels) -> None:
    """The worker's loop: a job in, a tensor (or a slider image's pixels) or an error out, until the
    parent closes its end."""
    _hold_to_limits(limits)
    while True:
        try:
            job, data = _receive(sock, limits.max_decoded_bytes)
        except (EOFError, OSError, ValueError):
            return
        restart = False
        try:
            header: dict[str, Any]
            payload: bytes | memoryview
            if job.get("op") == "rgba":
                pixels = np.ascontiguousarray(decode_pixels(bytes(data), limits), dtype=np.uint8)
                header, payload = {"ok": True, "shape": list(pixels.shape)}, memoryview(pixels).cast("B")
            else:
                prepared = decode(bytes(data), job["height"], job["width"], limits, job["gray"])
                tensor = np.ascontiguousarray(prepared.tensor, dtype=np.float32)
                header = {"ok": True, "shape": list(tensor.shape), "size": list(prepared.source_size),
                          "format": prepared.source_format}
                payload = memoryview(tensor).cast("B")
        except ApiError as error:
            header, payload = {"ok": False, "code": error.code, "message": error.message[:_MAX_MESSAGE_CHARS]}, b""
        except MemoryError:
            header, payload = {"ok": False, "code": ImageTooComplex.code, "message": (
                f"decoding this image needs more than the {limits.max_decode_mb} MB a request may use")}, b""
            restart = True  # a process that ran out of memory mid-decode is not trusted with the next image
        except Exception as error:  # any decoder failure on untrusted bytes: not an image we can read
            header, payload = {"ok": False, "code": UnsupportedImage.code,
                               "message": f"image could not be decoded ({type(error).__name__})"}, b""
        header["restart"] = restart
        del data
        try:
            _send(sock, header, payload)
        except OSError:
            return
        if restart:
            return


# -- the parent's side ----------------------------------------------------------------------------
class _Worker:
    """One forked child and the parent's end of its socket."""

    def __init__(self, limits: Limits, decode: Decode, decode_pixels: DecodePixels = decode_rgba) -> None:
        parent_end, child_end = socket.socketpair()
        gc.freeze()  # the child's collector then never touches (and so copies) the parent's objects
        try:
            pid = os.fork()
        except OSError:
            gc.unfreeze()
            parent_end.close()
            child_end.close()
            raise
        if pid != 0:
            gc.unfreeze()
        if pid == 0:  # the child: serve, then leave without running the parent's clean-up code
            status = 0
            try:
                parent_end.close()
                _close_inherited_files(child_end.fileno())
                _serve(child_end, limits, decode, decode_pixels)
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        child_end.close()
        self.pid, self.sock, self.limits = pid, parent_end, limits
        self._finalizer = weakref.finalize(self, _stop, pid, parent_end)

    def run(self, job: dict[str, Any], data: bytes, answer_bytes: int,
            timeout: float) -> tuple[dict[str, Any], memoryview]:
        """Send one job, wait at most `timeout` seconds for its answer (of at most `answer_bytes`
        bytes); _Lost when there is none."""
        try:
            self.sock.settimeout(timeout)
            _send(self.sock, job, data)
            return _receive(self.sock, answer_bytes)
        except TimeoutError as exc:  # socket.timeout is TimeoutError from Python 3.10
            raise _Lost(f"no answer within {timeout * 1000:.0f} ms", timed_out=True) from exc
        except (EOFError, OSError, ValueError) as exc:
            raise _Lost(self._how_it_ended() or f"protocol error ({type(exc).__name__})") from exc

    def _how_it_ended(self) -> str | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            time.sleep(0.01)  # the socket closed as the child exited: give the kernel a moment
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return None
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exited with status {os.WEXITSTATUS(status)}"

    def stop(self) -> None:
        self._finalizer()


def _close_inherited_files(keep: int) -> None:
    """Every descriptor but stdio and the worker's socket: the parent's sockets and pipes (the
    runtime's connection, a browser's pipe in tests) must not stay open in the child, or their other
    ends never see them close."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    os.closerange(3, keep)
    os.closerange(keep + 1, limit if 0 < limit <= 1 << 20 else 1 << 20)


def _stop(pid: int, sock: socket.socket) -> None:
    sock.close()
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class DecoderPool:
    """`size` worker processes decoding images (imaging.preprocess, or `decode`) under the limits.

    Thread-safe: a caller takes an idle worker, and waits for one (within its deadline) when all are
    busy. SCF hands an instance one request at a time, so one worker is the default.
    """

    def __init__(self, limits: Limits, size: int = 1, decode: Decode = preprocess,
                 decode_pixels: DecodePixels = decode_rgba) -> None:
        self.limits, self.decode, self.decode_pixels = limits, decode, decode_pixels
        self.isolated = hasattr(os, "fork")
        self.restarts = 0  # workers replaced after a crash, a time-out or running out of memory
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._missing = 0  # workers that could not be forked again; retried on the next request
        if self.isolated:
            for _ in range(size):
                self._idle.put(_Worker(limits, decode, decode_pixels))

    @property
    def pids(self) -> list[int]:
        """The idle workers' process ids (the budget benchmark reads their memory)."""
        return [worker.pid for worker in list(self._idle.queue)]

    def prepare(self, data: bytes, height: int, width: int, gray: str, deadline: float) -> PreparedImage:
        """Image bytes -> the model input, decoded by a worker before `deadline` (time.monotonic())."""
        if not self.isolated:
            return self.decode(data, height, width, self.limits, gray)
        job = {"height": height, "width": width, "gray": gray}
        return self._run(job, data, _MAX_HEADER_BYTES + height * width * 4, deadline,
                         lambda header, payload: _answer(header, payload, height, width))

    def rgba(self, data: bytes, deadline: float) -> np.ndarray:
        """Image bytes -> (height, width, 4) RGBA uint8 at its own size (imaging.decode_rgba), by a worker."""
        if not self.isolated:
            return self.decode_pixels(data, self.limits)
        return self._run({"op": "rgba"}, data, _MAX_HEADER_BYTES + self.limits.max_slider_pixels * 4, deadline,
                         lambda header, payload: _pixels_answer(header, payload, self.limits.max_slider_pixels))

    def _run(self, job: dict[str, Any], data: bytes, answer_bytes: int, deadline: float,
             check: Callable[[dict[str, Any], memoryview], Any]) -> Any:
        worker = self._acquire(deadline - time.monotonic())
        try:
            header, payload = worker.run(job, data, answer_bytes, deadline - time.monotonic())
        except _Lost as lost:
            self._release(worker, healthy=False)
            if lost.timed_out:
                raise DecoderTimedOut(self._out_of_time(), lost.reason) from None
            raise DecoderCrashed(lost.reason) from None
        except BaseException:
            self._release(worker, healthy=False)
            raise
        answer = check(header, payload)
        self._release(worker, healthy=not header.get("restart") and not isinstance(answer, DecoderCrashed))
        if isinstance(answer, ApiError):
            raise answer
        return answer

    def _acquire(self, remaining: float) -> _Worker:
        if remaining <= 0:
            raise DecoderTimedOut(self._out_of_time(), "the request's decoding time was spent")
        with self._lock:
            if self._missing:
                try:
                    worker = _Worker(self.limits, self.decode, self.decode_pixels)
                except OSError as exc:
                    raise DecoderCrashed(f"no decoder could be started ({exc.strerror})") from None
                self._missing -= 1
                return worker
        try:
            return self._idle.get(timeout=remaining)
        except queue.Empty:
            raise DecoderTimedOut(self._out_of_time(), "no decoder became free in time") from None

    def _release(self, worker: _Worker, healthy: bool) -> None:
        """Back to the idle queue, or stopped and replaced by a fresh fork before the reply goes out."""
        if healthy:
            self._idle.put(worker)
            return
        worker.stop()
        with self._lock:
            self.restarts += 1
            try:
                self._idle.put(_Worker(self.limits, self.decode, self.decode_pixels))
            except OSError:
                self._missing += 1

    def _out_of_time(self) -> str:
        return f"decoding took longer than the {self.limits.max_decode_ms} ms a request may spend on it"

    def close(self) -> None:
        """Stop every idle worker (each also stops when its pool is garbage-collected)."""
        while True:
            try:
                self._idle.get_nowait().stop()
            except queue.Empty:
                return


def _error_answer(header: dict[str, Any]) -> ApiError:
    """One of the worker's client errors, or, for anything else, DecoderCrashed."""
    error, message = _WORKER_ERRORS.get(str(header.get("code"))), header.get("message")
    if header.get("ok") is False and error is not None and isinstance(message, str):
        return error(message[:_MAX_MESSAGE_CHARS])
    return DecoderCrashed("a malformed answer")


def _pixels_answer(header: dict[str, Any], payload: memoryview, max_pixels: int) -> np.ndarray | ApiError:
    """A worker's slider pixels checked: (height, width, 4) within the limit, the bytes to match."""
    shape = header.get("shape")
    if (header.get("ok") is True and isinstance(shape, list) and len(shape) == 3 and shape[2] == 4
            and all(type(n) is int and n > 0 for n in shape) and shape[0] * shape[1] <= max_pixels
            and len(payload) == shape[0] * shape[1] * 4):
        return np.frombuffer(payload, dtype=np.uint8).reshape(shape)
    return _error_answer(header)


def _answer(header: dict[str, Any], payload: memoryview, height: int, width: int) -> PreparedImage | ApiError:
    """A worker's answer checked field by field: a tensor of the asked shape, one of its client errors,
    or, for anything else, DecoderCrashed."""
    if header.get("ok") is True:
        size, source_format = header.get("size"), header.get("format")
        if (header.get("shape") == [height, width, 1] and len(payload) == height * width * 4
                and isinstance(size, list) and len(size) == 2 and all(type(n) is int for n in size)
                and isinstance(source_format, str) and len(source_format) <= 8):
            tensor = np.frombuffer(payload, dtype=np.float32).reshape(height, width, 1)
            return PreparedImage(tensor, (size[0], size[1]), source_format)
        return DecoderCrashed("a malformed answer")
    return _error_answer(header)
