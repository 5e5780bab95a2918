"""The JSON shapes of the API (they also make the OpenAPI docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Item(BaseModel):
    id: int = Field(description="the item's id in the index")
    source: str = Field(description="where it came from: a file path or e.g. fashion-mnist/test#12")
    label: str | None = Field(description="class name, when known")
    added_at: str = Field(description="when it was added (ISO 8601, UTC)")
    image_url: str = Field(description="its thumbnail")


class Result(Item):
    rank: int = Field(description="1 = most similar")
    distance: float = Field(description="distance between the embeddings, in the index's "
                            "distance (SearchResponse.distance); smaller is more similar")


class SearchResponse(BaseModel):
    query: str = Field(description="the uploaded file's name, or 'item N'")
    k: int
    distance: str = Field(description="what the results' distances measure: the distance the "
                          "index's model was trained with (euclidean, squared_euclidean, "
                          "cosine...)")
    results: list[Result]
    seconds: float = Field(description="server time for this search: waiting for the model "
                           "(other requests), embedding, searching")


class ItemList(BaseModel):
    items: list[Item]


class Health(BaseModel):
    status: str
    items: int
    kind: str
    distance: str = Field(description="the distance searched by and reported")
    model: str = Field(description="fingerprint of the index's model")


class Problem(BaseModel):
    detail: str = Field(description="one line saying what was wrong")
