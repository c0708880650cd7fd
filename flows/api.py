"""The JSON API of CONTRACT §3."""

from ninja import NinjaAPI

api = NinjaAPI(title="Tileflow API", version="1", docs_url="/docs")
