from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "runtime"
    verbose_name = "Tileflow runtime"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        from runtime import registry
        from runtime.memory import tune_allocator

        tune_allocator()  # before the first upload or run
        # Our own pixel limit decides; Pillow's bomb check then fails above it instead of at 179 MP.
        Image.MAX_IMAGE_PIXELS = settings.TILEFLOW["MAX_PIXELS"]
        registry.load_builtin_steps()
        registry.load_step_modules(settings.TILEFLOW["STEP_MODULES"])
