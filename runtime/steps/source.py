from runtime.registry import Step, TileKind, step


@step("source", label="Image input", category="Input / output")
class Source(Step):
    """The uploaded image, decoded as it arrives, with its EXIF orientation applied."""

    kind = TileKind.SOURCE
