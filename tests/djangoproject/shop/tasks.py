"""The shop's jobs: each reads the row its view wrote."""

from shop.models import Order


def ship(order_id: int) -> str:
    order = Order.objects.get(pk=order_id)  # DoesNotExist if the row is not committed yet
    order.shipped = True
    order.save(update_fields=["shipped"])
    return f"shipped {order.name}"
