"""Built-in steps, one small module each. Importing this package registers them all."""

from runtime.steps import blur, grayscale, output, resize, rotate, source, watermark  # noqa: F401
