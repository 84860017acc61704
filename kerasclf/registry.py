"""A name -> factory registry, the way timm and keras-hub look models up by name."""

from dataclasses import dataclass
from typing import Callable

from kerasclf.errors import KerasclfError, did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable
    description: str
    meta: dict


class Registry:
    def __init__(self, kind, error=KerasclfError, list_command=None):
        self.kind = kind
        self.error = error
        self.list_command = list_command
        self._entries = {}

    def register(self, name, description="", **meta):
        """Decorator; `meta` holds facts callers need before building (sizes, preprocessing)."""

        def decorator(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc_lines = (factory.__doc__ or "").strip().splitlines()
            text = description or (doc_lines[0] if doc_lines else "")
            self._entries[name] = Entry(name, factory, text, meta)
            return factory

        return decorator

    def get(self, name):
        try:
            return self._entries[name]
        except KeyError:
            hint = f" Run `kerasclf {self.list_command}` to list them." if self.list_command else ""
            raise self.error(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
                f"Known: {', '.join(sorted(self._entries))}.{hint}"
            ) from None

    def names(self):
        return sorted(self._entries)

    def entries(self):
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name):
        return name in self._entries
