"""One view: write an order and enqueue its shipping in one transaction."""

import json
import time

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from myrq.contrib.django import get_queue
from shop import tasks
from shop.models import Order


def create_order(request: HttpRequest) -> HttpResponse:
    queue = get_queue("default")
    with transaction.atomic():
        order = Order.objects.create(name=request.POST["name"])
        job = queue.enqueue(tasks.ship, order.id)
        waiting_inside = queue.count  # 0 when the enqueue waits for the commit
        time.sleep(float(request.POST.get("pause", 0)))  # a worker may look meanwhile
        if request.POST.get("fail"):
            raise RuntimeError("the order is refused: the transaction rolls back")
    body = {"order": order.id, "job": job.id, "waiting_inside": waiting_inside}
    return HttpResponse(json.dumps(body), content_type="application/json")
