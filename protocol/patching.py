"""Replacing a library attribute for the threads running a step, and for no other thread.

A reproducible step replaces a few of torch's and Python's attributes while it runs (`Tensor.item`,
`math`'s transcendental functions, `torch.nn.modules.rnn._VF`, `torch.autocast`'s enter and exit). A
plain save-replace-restore is wrong as soon as two threads run steps, or one thread runs a step while
another does anything else: the second step saves the first one's replacement as "the original" and
restores it when it ends, leaving the process patched for good, and the other thread meanwhile gets the
step's semantics. `ThreadPatch` installs one dispatcher while any thread is inside `active()` (counted
under a lock) and restores the original when the last one leaves; the dispatcher gives the
replacement to threads that are inside and the original to every other thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class ThreadPatch:
    """`owner.name` replaced, in the threads inside `active()`, by `make(original)`.

    `dispatch` selects the attribute installed on `owner` while any thread is active: by default a
    function forwarding each call to the replacement or the original (which suits functions and
    methods); an object attribute passes a factory of its own (see `protocol.rnn`)."""

    def __init__(self, owner: Any, name: str, make: Callable[[Any], Any],
                 dispatch: Callable[[ThreadPatch], Any] | None = None) -> None:
        self.owner = owner
        self.name = name
        self.make = make
        self.original: Any = None
        self.replacement: Any = None
        self._dispatch = dispatch if dispatch is not None else _forwarding_function
        self._lock = threading.Lock()
        self._users = 0
        self._local = threading.local()

    def is_active(self) -> bool:
        """Whether the calling thread is inside `active()`."""
        return getattr(self._local, "depth", 0) > 0

    def current(self) -> Any:
        """The replacement for a thread inside `active()`, the original for any other."""
        return self.replacement if self.is_active() else self.original

    @contextmanager
    def active(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self.original = getattr(self.owner, self.name)
                self.replacement = self.make(self.original)
                setattr(self.owner, self.name, self._dispatch(self))
            self._users += 1
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    setattr(self.owner, self.name, self.original)


def _forwarding_function(patch: ThreadPatch) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return patch.current()(*args, **kwargs)

    forward.__name__ = getattr(patch.original, "__name__", patch.name)
    forward.__doc__ = getattr(patch.original, "__doc__", None)
    return forward
