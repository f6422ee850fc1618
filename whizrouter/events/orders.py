"""Order messages: a cart the user sent from a catalog, and its lines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from whizrouter.events.message import Message
from whizrouter.events.wire import WireModel


class ProductItem(WireModel):
    """One line of an order: ``product_retailer_id``, ``quantity``, ``item_price``, ``currency``."""

    product_retailer_id: str
    quantity: int | None = None
    item_price: float | None = None
    currency: str | None = None


class Order(WireModel):
    """A cart the user sent.

    Attributes:
        catalog_id: the catalog ordered from.
        text: the user's note.
        product_items: the lines of the order.
    """

    catalog_id: str | None = None
    text: str | None = None
    product_items: list[ProductItem] = Field(default_factory=list)


class OrderMessage(Message):
    """A cart the user sent from a catalog, in ``order``."""

    type: Literal["order"]
    order: Order
