"""The step registry: every step type is declared once, with its params, geometry and `process`.

One declaration drives the API's JSON Schema, the editor's forms, graph validation and the
runtime. Built-in steps live in `runtime/steps/`; third-party steps load from the modules named
in the `TILEFLOW_STEP_MODULES` setting and are written exactly the same way.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from runtime.tiles import Box, Size, Tile


class TileKind(enum.Enum):
    """How a step's output tiles depend on its input."""

    SOURCE = "source"  # the uploaded image; not processed by workers
    OUTPUT = "output"  # an encoder fed by the conductor; not processed by workers
    POINT = "point"  # output box needs the same input box
    NEIGHBOURHOOD = "neighbourhood"  # output box needs the input box grown by a halo
    GEOMETRY = "geometry"  # output box needs a mapped input box (resize, rotate)
    WHOLE_IMAGE = "whole_image"  # every output box needs the whole input


class StepParams(BaseModel):
    """Base for a step's typed params: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a step knows of an image before any pixel: its size and its mode."""

    size: Size
    mode: str


class StepContext:
    """What `process` is given besides its tile: the box to produce and a way to hand tiles on."""

    def __init__(
        self, node_id: str, out_box: Box, input: ImageInfo, output: ImageInfo, write: Callable[[Tile], None]
    ) -> None:
        self.node_id = node_id
        self.out_box = out_box
        self.input = input
        self.output = output
        self._write = write

    def write(self, tile: Tile) -> None:
        """Hand a tile on to the next step; a step may write zero, one or many tiles."""
        self._write(tile)


class Step:
    """Base class of every step. Subclasses set `Params` and `kind` and implement `process`.

    A step instance is made once per node and run, knowing its params and its input image, and is
    then called for many tiles (possibly from several threads at once: keep it read-only after
    `__init__`).
    """

    Params: ClassVar[type[StepParams]] = StepParams
    kind: ClassVar[TileKind] = TileKind.POINT
    lane: ClassVar[str] = "default"
    # Filled in by @step.
    type: ClassVar[str] = ""
    label: ClassVar[str] = ""
    category: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, params: StepParams, input: ImageInfo) -> None:
        self.params = params
        self.input = input

    def output_info(self) -> ImageInfo:
        """Return the size and mode of this step's output image (default: same as input)."""
        return self.input

    def needs(self, box: Box) -> Box:
        """Return the input box that output `box` depends on (default: the same box)."""
        if self.kind is TileKind.WHOLE_IMAGE:
            return self.input.size.box
        return box

    def process(self, tile: Tile, ctx: StepContext) -> None:
        """Produce `ctx.out_box` from `tile` (which covers `self.needs(ctx.out_box)`) via `ctx.write`."""
        raise NotImplementedError(f"step {self.type!r} does not process tiles")


class RegistryError(Exception):
    pass


class StepRegistry:
    """Step types by name. Registering a name twice is an error, as in Django's AdminSite."""

    def __init__(self) -> None:
        self._steps: dict[str, type[Step]] = {}

    def register(self, step_class: type[Step]) -> None:
        if step_class.type in self._steps:
            raise RegistryError(f"step type {step_class.type!r} is already registered")
        self._steps[step_class.type] = step_class

    def get(self, type_name: str) -> type[Step] | None:
        return self._steps.get(type_name)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._steps

    def all(self) -> list[type[Step]]:
        return list(self._steps.values())

    def catalog(self) -> list[dict[str, Any]]:
        """Return every step as the API's catalog entry, its params as JSON Schema ready to drive a form."""
        return [
            {
                "type": cls.type,
                "label": cls.label,
                "category": cls.category,
                "description": cls.description,
                "params_schema": form_schema(cls.Params, title=cls.label),
            }
            for cls in self._steps.values()
        ]


COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"


def form_schema(params_class: type[StepParams], *, title: str) -> dict[str, Any]:
    """Return the JSON Schema of `params_class` made plain for form builders.

    References are inlined, an optional field (`X | None`, "left out means automatic") is shown as X
    without a null default, and `#rrggbb` strings are marked `format: color`.
    """
    schema = params_class.model_json_schema()
    definitions = schema.pop("$defs", {})
    schema = _simplify(_inline(schema, definitions, depth=0))
    schema["title"] = title
    # A docstring inherited from StepParams describes the base class, not this step's params.
    if params_class is StepParams or not params_class.__dict__.get("__doc__"):
        schema.pop("description", None)
    schema.setdefault("properties", {})
    return schema


def _inline(node: Any, definitions: dict[str, Any], depth: int) -> Any:
    if depth > 20:
        raise RegistryError("step params nest too deeply (a recursive model?) to be shown as a form")
    if isinstance(node, list):
        return [_inline(item, definitions, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
        return _inline(merged, definitions, depth + 1)
    return {key: _inline(value, definitions, depth) for key, value in node.items()}


def _simplify(node: dict[str, Any]) -> dict[str, Any]:
    variants = node.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        others = [variant for variant in variants if variant != {"type": "null"}]
        if len(others) == 1:
            node = {**others[0], **{key: value for key, value in node.items() if key != "anyOf"}}
            if node.get("default", 0) is None:
                del node["default"]
    if node.get("type") == "string" and node.get("pattern") == COLOR_PATTERN:
        node.setdefault("format", "color")
    if isinstance(node.get("properties"), dict):
        node["properties"] = {name: _simplify(prop) for name, prop in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _simplify(node["items"])
    return node


registry = StepRegistry()


def step(
    type_name: str, *, label: str, category: str, description: str | None = None, target: StepRegistry | None = None
) -> Callable[[type[Step]], type[Step]]:
    """Declare and register a step class under `type_name`."""

    def register(cls: type[Step]) -> type[Step]:
        if not issubclass(cls, Step):
            raise RegistryError(f"{cls.__name__} must subclass runtime.registry.Step")
        cls.type = type_name
        cls.label = label
        cls.category = category
        cls.description = description if description is not None else " ".join((cls.__doc__ or "").split())
        (target or registry).register(cls)
        return cls

    return register


_loaded_modules: set[str] = set()


def load_step_modules(module_names: list[str]) -> None:
    """Import modules that declare steps (each once, however often this is called)."""
    for name in module_names:
        if name not in _loaded_modules:
            importlib.import_module(name)
            _loaded_modules.add(name)


def load_builtin_steps() -> None:
    load_step_modules(["runtime.steps"])
