"""Order messages."""

from __future__ import annotations

from tests.events.samples import one
from whizrouter.events import OrderMessage


def test_order() -> None:
    msg = one("onprem/order.json", OrderMessage)
    assert msg.order.catalog_id == "481923000000001"
    assert msg.order.text == "Please gift-wrap the mugs"
    items = [
        (i.product_retailer_id, i.quantity, i.item_price, i.currency)
        for i in msg.order.product_items
    ]
    assert items == [("MUG-BLUE-350", 2, 12.5, "EUR"), ("BEANS-1KG", 1, 21.0, "EUR")]
