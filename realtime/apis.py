"""Read-only APIs: recent alerts (domain events) and webhook deliveries, newest first, paginated
as every list of the API (config/pagination.py); bad filters are a 400 naming the field."""

from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from config.pagination import paginate as paginate_list

from .selectors import alert_list, delivery_list
from .serializers import (
    AlertListQuerySerializer,
    AlertOutputSerializer,
    DeliveryListQuerySerializer,
    DeliveryOutputSerializer,
)


def paginate(request, view, queryset, serializer_class):
    try:
        return paginate_list(request, view, queryset, serializer_class)
    except NotFound as exc:  # a page past the end: the 404 names the field
        exc.field = "page"
        raise


class AlertListApi(APIView):
    def get(self, request):
        query = AlertListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        alerts = alert_list(kind=filters["kind"], lead_id=filters["lead"], stage=filters["stage"], since=filters["since"])
        return paginate(request, self, alerts, AlertOutputSerializer)


class DeliveryListApi(APIView):
    def get(self, request):
        query = DeliveryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        deliveries = delivery_list(status=filters["status"], endpoint_id=filters["endpoint"], kind=filters["kind"])
        return paginate(request, self, deliveries, DeliveryOutputSerializer)
