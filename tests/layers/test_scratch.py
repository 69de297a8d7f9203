"""Scratch buffers: reused while big enough, grown when not, one set per thread, writable in any grad mode."""

import threading
import weakref

import torch

from sandglass.layers.scratch import release_scratch, scratch


def test_a_request_reuses_the_buffer_of_its_name_and_grows_it_when_needed() -> None:
    release_scratch()
    like = torch.zeros(1)
    first = scratch("a", (4, 5), like)
    assert first.shape == (4, 5) and first.dtype == torch.float32 and first.is_contiguous()
    smaller = scratch("a", (3, 2), like)
    assert smaller.data_ptr() == first.data_ptr()
    other = scratch("b", (4, 5), like)
    assert other.data_ptr() != first.data_ptr()
    larger = scratch("a", (6, 7), like)
    assert larger.shape == (6, 7)
    assert scratch("a", (6, 7), like).data_ptr() == larger.data_ptr()
    wide = scratch("a", (6, 7), like.double())
    assert wide.dtype == torch.float64


def test_release_drops_the_buffers() -> None:
    release_scratch()
    view = scratch("a", (1000,), torch.zeros(1))
    buffer = weakref.ref(view._base)
    del view
    assert buffer() is not None  # still held for the next request
    release_scratch()
    assert buffer() is None


def test_threads_get_buffers_of_their_own() -> None:
    like = torch.zeros(1)
    mine = scratch("a", (8,), like)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(scratch("a", (8,), like).data_ptr()))
    thread.start()
    thread.join()
    assert theirs[0] != mine.data_ptr()


def test_a_buffer_made_under_inference_mode_is_writable_outside_it() -> None:
    release_scratch()
    like = torch.zeros(1)
    with torch.inference_mode():
        scratch("a", (3,), like).fill_(1.0)
    buffer = scratch("a", (3,), like)
    buffer.fill_(2.0)  # an inference tensor would refuse this
    assert not buffer.is_inference()


def test_other_devices_get_fresh_tensors() -> None:
    like = torch.zeros(1, device="meta")
    first = scratch("a", (2, 3), like)
    assert first.device.type == "meta" and first.shape == (2, 3)
    assert scratch("a", (2, 3), like) is not first
