"""The HTTP API: one NinjaAPI at /api/, with the routers of api/ mounted
under /v1. Query parameters an operation does not take are refused (422),
as unknown body fields are; errors are the envelope of errors.py; the
OpenAPI document is completed by openapi.py.
"""

import functools

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from api import alerts, deliveries, errors, events, openapi, organizations, webhooks
from api.auth import OrganizationAuth
from api.parsing import JsonOnlyParser
from webhooks.errors import InvalidInput

# Operation ids are part of the contract (generated clients name their
# methods after them): they keep the names they had before the API's
# modules moved into this package.
OPERATION_ID_PREFIXES = {
    webhooks.__name__: "webhooks_api",
    events.__name__: "deliveries_api",
    deliveries.__name__: "deliveries_api",
    alerts.__name__: "deliveries_alerts_api",
    organizations.__name__: "organizations_api",
}


class HeraldAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        prefix = OPERATION_ID_PREFIXES[operation.view_func.__module__]
        return f"{prefix}_{operation.view_func.__name__}"

    def create_temporal_response(self, request: HttpRequest) -> HttpResponse:
        # Created after authentication: the key's quota is known.
        response = super().create_temporal_response(request)
        errors.add_quota_headers(request, response)
        return response

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            for operation in operations.values():
                openapi.complete_error_responses(operation)
                openapi.describe_responses(operation["responses"])
        return schema

    def _get_urls(self):
        urls = super()._get_urls()
        for pattern in urls:
            pattern.callback = errors.json_method_errors(pattern.callback)
        for bound_router in self._get_bound_routers():
            for path_view in bound_router.path_operations.values():
                for operation in path_view.operations:
                    _refuse_unknown_query_parameters(operation)
        return urls


def _refuse_unknown_query_parameters(operation) -> None:
    """A query parameter the operation does not take is a 422 naming it, like
    an unknown body field: a misspelt filter must not silently list everything.
    Checked once the caller is authenticated, as parameters are."""
    known = set()
    for model in operation.models:
        if model.__ninja_param_source__ == "query":
            known.update(getattr(model, "__ninja_flatten_map__", None) or model.model_fields)
    get_values = operation._get_values

    @functools.wraps(get_values)
    def checked(request, *args, **kwargs):
        unknown = sorted(set(request.GET) - known)
        if unknown:
            raise InvalidInput("unknown query parameter", unknown[0])
        return get_values(request, *args, **kwargs)

    operation._get_values = checked


api = HeraldAPI(
    title="Herald API",
    version="1",
    description=(
        "Publish events and manage webhooks, deliveries and their attempts.\n\n"
        "Authenticate with an organization API key (`Authorization: Bearer hk_…`), or with "
        "a platform key (`hp_…`) naming the organization to act for in the "
        "`Herald-Organization` header (its `org_…` id or your external id); the "
        "organizations and portal-session operations take a platform key only.\n\n"
        "Each key has two rate limits per `HERALD_API_RATE_WINDOW_SECONDS` (a minute): "
        "publishing (`HERALD_API_PUBLISH_RATE_LIMIT`, 60,000 a minute; platform keys "
        "300,000) and everything else (`HERALD_API_RATE_LIMIT`, 1,200; platform keys 6,000). "
        "Answers carry `X-RateLimit-Limit` and `X-RateLimit-Remaining`, and a 429 carries "
        "`Retry-After`.\n\n"
        'Every error is `{"error": {"code": …, "message": …, "field": …}}`, `field` naming '
        "the offending parameter or body field when there is one. Lists are newest first "
        "and paginated: pass the `next_cursor` of one page as `cursor` to get the next; "
        "rows added meanwhile never shift the pages."
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    parser=JsonOnlyParser(),
    # Every operation needs a key unless its router says otherwise.
    auth=OrganizationAuth(),
)
errors.install(api)
api.add_router("/v1/webhooks", webhooks.router)
api.add_router("/v1/events", events.router)
api.add_router("/v1/deliveries", deliveries.router)
api.add_router("/v1", alerts.router)
api.add_router("/v1/organizations", organizations.router)
