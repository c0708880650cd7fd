"""A URL configuration for tests of console.handler: one view that reads its body as a stream."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def view_started() -> None:
    """Replaced by tests that watch when the view begins."""


@csrf_exempt
async def count_pieces(request):
    view_started()
    pieces = [len(piece) async for piece in request.body_stream]
    return JsonResponse({"pieces": pieces, "body": request.body.decode()})


@csrf_exempt
async def gathered(request):
    return JsonResponse({"length": request.META.get("CONTENT_LENGTH"), "body": request.body.decode()})


urlpatterns = [path("stream/", count_pieces, name="stream"), path("gathered/", gathered, name="gathered")]
