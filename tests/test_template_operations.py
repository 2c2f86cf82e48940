"""The template's operations side, held to the code: alarms, the dashboard and the metrics they name,
the alarm topic, HTTP API access logs and CORS, and what S3 Batch Operations may do for a reindex.

The metrics the code emits are read from the code itself (every `add_metric` and the dimensions of
its receiver, and Powertools' own ColdStart), so a renamed metric or a new dimension fails here
rather than leaving an alarm or a graph silently empty."""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from cfn import (
    FUNCTIONS,
    NO_VALUE,
    PSEUDO,
    ROOT,
    default,
    events,
    properties,
    resource,
    resources_of_type,
    template,
    walk,
)
from embedding_engine import observability

CODE_DIRECTORIES = (ROOT / "layer/python/embedding_engine", ROOT / "function")
METRIC_CLASSES = {"Metrics", "EphemeralMetrics"}
ALARM = "AWS::CloudWatch::Alarm"
ALARM_ACTIONS = {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], NO_VALUE]}


# --------------------------------------------------------------------------------------------------
# What the code emits: an AST scan.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receiver:
    """A `Metrics(...)` or `EphemeralMetrics(...)` object: its namespace and default dimensions."""

    namespace: str
    dimensions: frozenset[str]


def _constant(node: ast.AST | None, module_constants: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return module_constants.get(node.id)
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _method_calls(scope: ast.AST, method: str) -> Iterator[tuple[str, ast.Call]]:
    """`receiver.method(...)` calls directly in `scope` (not in functions nested in it)."""
    for node in _own_nodes(scope):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == method
            and isinstance(node.func.value, ast.Name)
        ):
            yield node.func.value.id, node


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(scope):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield child
        yield from _own_nodes(child)


def _scopes(tree: ast.Module) -> Iterator[ast.AST]:
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _receivers(scope: ast.AST, constants: dict[str, Any]) -> dict[str, Receiver]:
    found = {}
    for node in _own_nodes(scope):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id in METRIC_CLASSES
        ):
            service = _keyword(node.value, "service")
            found[node.targets[0].id] = Receiver(
                namespace=_constant(_keyword(node.value, "namespace"), constants),
                dimensions=frozenset({"service"} if service is not None else ()),
            )
    return found


def _names(expression: ast.expr, scope: ast.AST) -> set[str]:
    """The metric names an expression can take: its string constants, and the values of the dict
    literals it looks up (`names.get(key, "Default")`)."""
    if isinstance(expression, ast.Constant):
        return {str(expression.value)}
    found = {
        str(node.value)
        for node in ast.walk(expression)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    looked_up = {node.id for node in ast.walk(expression) if isinstance(node, ast.Name)}
    for node in _own_nodes(scope):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(isinstance(target, ast.Name) and target.id in looked_up for target in node.targets)
        ):
            found |= {str(value.value) for value in node.value.values if isinstance(value, ast.Constant)}
    return found


def _modules() -> Iterator[tuple[Path, ast.Module, dict[str, Any]]]:
    shared = {
        "METRICS_NAMESPACE": observability.METRICS_NAMESPACE,
        "SERVICE_NAME": observability.SERVICE_NAME,
    }
    for directory in CODE_DIRECTORIES:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            constants = dict(shared)
            for node in tree.body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    constants |= {
                        t.id: str(node.value.value) for t in node.targets if isinstance(t, ast.Name)
                    }
            yield path, tree, constants


def _module_receivers() -> dict[str, Receiver]:
    """Module-level receivers, by name (imported elsewhere under that name)."""
    found: dict[str, Receiver] = {}
    for _, tree, constants in _modules():
        found |= _receivers(tree, constants)
    return found


def _cold_start_metric() -> tuple[str, frozenset[str]]:
    """Powertools' ColdStart: its name and dimensions, read from Powertools' own source."""
    source = textwrap.dedent(inspect.getsource(AmazonCloudWatchEMFProvider.add_cold_start_metric))
    function = ast.parse(source)
    [name] = {
        _constant(_keyword(node, "name"), {})
        for node in ast.walk(function)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "single_metric"
    }
    dimensions = frozenset(
        _constant(_keyword(node, "name"), {})
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_dimension"
    )
    return name, dimensions


def emitted_metrics() -> dict[tuple[str, str], set[frozenset[str]]]:
    """(namespace, metric name) -> the dimension-name sets the code emits it with."""
    module_level = _module_receivers()
    emitted: dict[tuple[str, str], set[frozenset[str]]] = defaultdict(set)
    cold_start_receivers = []
    for _, tree, constants in _modules():
        for scope in _scopes(tree):
            local = module_level | _receivers(scope, constants)
            added = defaultdict(set)
            for receiver, call in _method_calls(scope, "add_dimension"):
                added[receiver].add(_constant(_keyword(call, "name"), constants))
            for receiver, call in _method_calls(scope, "add_metric"):
                owner = local[receiver]
                expression = _keyword(call, "name")
                assert expression is not None
                for metric in _names(expression, scope):
                    emitted[(owner.namespace, metric)].add(owner.dimensions | added[receiver])
            # @metrics.log_metrics(capture_cold_start_metric=True)
            for receiver, call in _method_calls(scope, "log_metrics"):
                if _constant(_keyword(call, "capture_cold_start_metric"), constants) is True:
                    cold_start_receivers.append(local[receiver])
    name, dimensions = _cold_start_metric()
    for owner in cold_start_receivers:
        emitted[(owner.namespace, name)].add(dimensions)
    return dict(emitted)


def test_the_scan_finds_the_metrics_the_code_emits() -> None:
    emitted = emitted_metrics()
    namespace = observability.METRICS_NAMESPACE
    # Plain names, a name looked up in a dict, the init document's dimensions and Powertools' ColdStart.
    assert {(namespace, "InitMs"), (namespace, "ColdStart"), (namespace, "DocumentsIndexed")} <= set(emitted)
    assert (namespace, "DocumentsSkipped") in emitted and (namespace, "StaleEvents") in emitted
    assert emitted[(namespace, "InitMs")] == {frozenset({"service", "function_name", "load_strategy"})}
    assert emitted[(namespace, "ColdStart")] == {frozenset({"service", "function_name"})}
    assert emitted[(namespace, "Inputs")] == {frozenset({"service"})}
    assert {space for space, _ in emitted} == {namespace}


def test_the_init_metrics_carry_the_function_name_as_cold_starts_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What publish_init writes, run: the EMF document a dashboard SEARCH finds by function."""
    from embedding_engine.health import publish_init

    monkeypatch.delenv("POWERTOOLS_METRICS_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stack-IndexingFunction-AbC123")
    publish_init({"load": 300.0, "warmup": 70.0, "total": 4000.0}, "cpu")
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [document] = documents
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == observability.METRICS_NAMESPACE
    [dimensions] = directive["Dimensions"]
    assert set(dimensions) == {"function_name", "load_strategy", "service"}
    assert document["function_name"] == "stack-IndexingFunction-AbC123"
    assert document["service"] == observability.SERVICE_NAME
    assert document["InitMs"] == [4000.0]  # Powertools writes lists
    assert {metric["Name"] for metric in directive["Metrics"]} == {"InitMs", "ModelLoadMs", "WarmupMs"}


# --------------------------------------------------------------------------------------------------
# What the template names: alarms and the dashboard.
# --------------------------------------------------------------------------------------------------


def substitute(text: str) -> str:
    """A Fn::Sub string with each ${Resource} or ${Resource.Attribute} as a stand-in value, parameters
    at their defaults and PSEUDO; a name that is neither fails."""

    def value(match: re.Match[str]) -> str:
        key = match[1]
        if key in PSEUDO:
            return PSEUDO[key]
        if key in template()["Parameters"]:
            return str(default(key))
        assert key.split(".")[0] in template()["Resources"], key
        return f"<{key}>"

    return re.sub(r"\$\{([\w:.]+)\}", value, text)


def dashboard() -> dict[str, Any]:
    [body] = resources_of_type("AWS::CloudWatch::Dashboard").values()
    parsed: dict[str, Any] = json.loads(substitute(body["Properties"]["DashboardBody"]["Fn::Sub"]))
    return parsed


@dataclass(frozen=True)
class MetricUse:
    where: str
    namespace: str
    name: str
    dimensions: dict[
        str, str
    ]  # values as written (stand-ins in the dashboard); "" when a SEARCH leaves them open
    stat: str | None = None


SEARCH = re.compile(r"SEARCH\('\s*\{([^}]*)\}(.*?)'\s*,\s*'(\w+)'")


def dashboard_metrics() -> list[MetricUse]:
    uses = []
    for index, widget in enumerate(dashboard()["widgets"]):
        widget_props = widget["properties"]
        where = f"widget {index} ({widget_props.get('title')})"
        previous: list[Any] = []
        for row in widget_props.get("metrics", []):
            options = row[-1] if isinstance(row[-1], dict) else {}
            if "expression" in options:
                match = SEARCH.search(options["expression"])
                assert match, options["expression"]
                namespace, *dimension_names = (part.strip() for part in match[1].split(","))
                terms = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
                name = terms.pop("MetricName")
                assert set(terms) <= set(dimension_names), options["expression"]
                dimensions = {dimension: terms.get(dimension, "") for dimension in dimension_names}
                uses.append(MetricUse(where, namespace, name, dimensions, match[3]))
                continue
            fields = [item for item in row if not isinstance(item, dict)]
            fields = [previous[i] if item == "." else item for i, item in enumerate(fields)]
            previous = fields
            namespace, name, *pairs = fields
            assert len(pairs) % 2 == 0, row
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            stat = options.get("stat", widget_props.get("stat"))
            uses.append(MetricUse(where, namespace, name, dimensions, stat))
    return uses


def alarm_metrics() -> list[MetricUse]:
    uses = []
    for name, alarm in resources_of_type(ALARM).items():
        props = alarm["Properties"]
        assert "Metrics" not in props, name  # one metric each: the checks below read it
        dimensions = {item["Name"]: item["Value"] for item in props.get("Dimensions", [])}
        uses.append(MetricUse(name, props["Namespace"], props["MetricName"], dimensions, props["Statistic"]))
    return uses


def test_every_metric_of_ours_the_template_names_is_one_the_code_emits_with_those_dimensions() -> None:
    emitted = emitted_metrics()
    namespace = observability.METRICS_NAMESPACE
    ours = [use for use in dashboard_metrics() + alarm_metrics() if use.namespace == namespace]
    assert {"InitMs", "ColdStart"} <= {use.name for use in ours}
    for use in ours:
        assert (namespace, use.name) in emitted, use
        assert frozenset(use.dimensions) in emitted[(namespace, use.name)], use
        if "service" in use.dimensions:
            assert use.dimensions["service"] == observability.SERVICE_NAME, use
    # No metric in a namespace of ours other than the code's (a typo would graph nothing).
    body = json.dumps(dashboard()) + json.dumps(resources_of_type(ALARM))
    assert {use.namespace for use in dashboard_metrics() + alarm_metrics()} - {namespace} <= {
        "AWS/Lambda",
        "AWS/SQS",
        "AWS/ApiGateway",
    }
    assert body.count(namespace) == len(ours)


def test_the_dashboard_shows_init_cold_starts_latency_provisioned_concurrency_and_queues() -> None:
    uses = dashboard_metrics()

    def shown(namespace: str, name: str, **dimensions: str) -> list[MetricUse]:
        return [
            use
            for use in uses
            if (use.namespace, use.name) == (namespace, name)
            and all(use.dimensions.get(key) == value for key, value in dimensions.items())
        ]

    ours = observability.METRICS_NAMESPACE
    for function in FUNCTIONS:  # init figures and cold starts of each function, told apart
        assert shown(ours, "InitMs", function_name=f"<{function}>"), function
        assert shown(ours, "ColdStart", function_name=f"<{function}>"), function
    durations = shown("AWS/Lambda", "Duration", FunctionName="<ApiFunction>")
    assert {use.stat for use in durations} >= {"p50", "p90", "p99"}
    assert {use.stat for use in shown("AWS/ApiGateway", "Latency", ApiId="<HttpApi>")} >= {
        "p50",
        "p90",
        "p99",
    }
    alias = {"FunctionName": "<ApiFunction>", "Resource": "<ApiFunction>:live"}
    assert shown("AWS/Lambda", "ProvisionedConcurrencyUtilization", **alias)
    assert shown("AWS/Lambda", "ProvisionedConcurrencySpilloverInvocations", **alias)
    for queue in ("DocumentsQueue", "DocumentsDeadLetterQueue"):
        assert shown("AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=f"<{queue}.QueueName>"), queue
    assert shown("AWS/SQS", "ApproximateAgeOfOldestMessage", QueueName="<DocumentsQueue.QueueName>")
    for name in ("Errors", "Throttles"):
        assert shown("AWS/Lambda", name, FunctionName="<ApiFunction>"), name


def test_the_dashboard_widgets_fit_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for widget in dashboard()["widgets"]:
        x, y, width, height = (widget[key] for key in ("x", "y", "width", "height"))
        assert x >= 0 and x + width <= 24, widget
        cells = {(column, row) for column in range(x, x + width) for row in range(y, y + height)}
        assert not cells & taken, widget["properties"]["title"]
        taken |= cells
        assert widget["properties"]["region"] == PSEUDO["AWS::Region"]


# --------------------------------------------------------------------------------------------------
# The alarms.
# --------------------------------------------------------------------------------------------------

EXPECTED_ALARMS = {
    # name: (namespace, metric, dimensions as the template writes them)
    "DeadLetterQueueAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": {"Fn::GetAtt": ["DocumentsDeadLetterQueue", "QueueName"]}},
    ),
    "IndexingBacklogAlarm": (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        {"QueueName": {"Fn::GetAtt": ["DocumentsQueue", "QueueName"]}},
    ),
    "ApiErrorsAlarm": ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "ApiFunction"}}),
    "ApiThrottlesAlarm": ("AWS/Lambda", "Throttles", {"FunctionName": {"Ref": "ApiFunction"}}),
    "ApiSpilloverAlarm": (
        "AWS/Lambda",
        "ProvisionedConcurrencySpilloverInvocations",
        {"FunctionName": {"Ref": "ApiFunction"}, "Resource": {"Fn::Sub": "${ApiFunction}:live"}},
    ),
    "HttpApi5xxAlarm": ("AWS/ApiGateway", "5xx", {"ApiId": {"Ref": "HttpApi"}}),
}


def test_the_alarms_watch_the_stack_own_resources() -> None:
    alarms = resources_of_type(ALARM)
    assert set(alarms) == set(EXPECTED_ALARMS)
    kinds = {
        "QueueName": "AWS::SQS::Queue",
        "FunctionName": "AWS::Serverless::Function",
        "ApiId": "AWS::Serverless::HttpApi",
    }
    for name, (namespace, metric, dimensions) in EXPECTED_ALARMS.items():
        props = alarms[name]["Properties"]
        assert (props["Namespace"], props["MetricName"]) == (namespace, metric), name
        written = {item["Name"]: item["Value"] for item in props["Dimensions"]}
        assert written == dimensions, name
        for dimension, value in written.items():
            if dimension in kinds:  # the value names a resource of the right type
                target = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
                assert resource(target)["Type"] == kinds[dimension], (name, dimension)
        assert props["Period"] >= 60 and props["EvaluationPeriods"] >= 1
        assert props["TreatMissingData"] == "notBreaching", name  # these metrics go quiet when idle
        assert len(props["AlarmDescription"]) > 150, name  # says what to do
        assert "AlarmName" not in props  # CloudFormation names them per stack
    # The alias the spillover alarm watches is the one SAM publishes.
    assert properties("ApiFunction")["AutoPublishAlias"] == "live"


def test_the_thresholds_are_the_parameters_they_should_be() -> None:
    alarms = {name: body["Properties"] for name, body in resources_of_type(ALARM).items()}
    dead_letter = alarms["DeadLetterQueueAlarm"]
    assert (dead_letter["Threshold"], dead_letter["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    backlog = alarms["IndexingBacklogAlarm"]
    assert backlog["Threshold"] == {"Ref": "IndexingMaxMessageAgeSeconds"}
    assert default("IndexingMaxMessageAgeSeconds") == 900
    assert backlog["Statistic"] == "Maximum"
    for name in ("ApiErrorsAlarm", "ApiThrottlesAlarm"):
        assert (alarms[name]["Threshold"], alarms[name]["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert alarms[name]["Statistic"] == "Sum"


def test_spillover_alarm_exists_only_with_provisioned_concurrency_and_allows_for_the_warmup_pings() -> None:
    spillover = resource("ApiSpilloverAlarm")
    assert spillover["Condition"] == "HasProvisionedConcurrency"
    props = spillover["Properties"]
    # Each 5-minute ping sends WarmupConcurrency invocations at once: those spill over by design.
    [schedule] = events("ApiFunction", "ScheduleV2").values()
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert "${WarmupConcurrency}" in schedule["Input"]["Fn::Sub"]
    assert props["Period"] == 300
    assert props["Threshold"] == {"Ref": "WarmupConcurrency"}
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["EvaluationPeriods"] == props["DatapointsToAlarm"] >= 2  # sustained, not one burst
    assert not any("Condition" in resource(name) for name in EXPECTED_ALARMS if name != "ApiSpilloverAlarm")


# --------------------------------------------------------------------------------------------------
# The template under given parameter values: conditions evaluated, Fn::If chosen, NoValue dropped.
# --------------------------------------------------------------------------------------------------


class Deployment:
    """Parameter values as given (or their defaults), for evaluating conditions."""

    def __init__(self, values: dict[str, str]) -> None:
        self.parameters = template()["Parameters"]
        assert set(values) <= set(self.parameters)
        self.given = {
            name: values.get(name, str(body.get("Default", ""))) for name, body in self.parameters.items()
        }

    def value(self, node: Any) -> Any:
        if isinstance(node, str | int | float | bool):
            return str(node)
        [(function, argument)] = node.items()
        if function == "Ref":
            text = self.given[argument]
            return text.split(",") if self.parameters[argument]["Type"] == "CommaDelimitedList" else text
        if function == "Condition":
            return self.condition(argument)
        logic = {
            "Fn::Equals": lambda: self.value(argument[0]) == self.value(argument[1]),
            "Fn::Not": lambda: not self.value(argument[0]),
            "Fn::Or": lambda: any(self.value(item) for item in argument),
            "Fn::And": lambda: all(self.value(item) for item in argument),
            "Fn::Join": lambda: argument[0].join(self.value(argument[1])),
        }
        assert function in logic, f"no evaluator for {function}"
        evaluate: Callable[[], Any] = logic[function]
        return evaluate()

    def condition(self, name: str) -> bool:
        return bool(self.value(template()["Conditions"][name]))

    def choose(self, node: Any) -> Any:
        """Fn::If resolved, AWS::NoValue dropped; every other intrinsic left as written."""
        if isinstance(node, list):
            return [self.choose(item) for item in node if self.choose(item) != NO_VALUE]
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, then, otherwise = node["Fn::If"]
                return self.choose(then if self.condition(name) else otherwise)
            return {key: self.choose(item) for key, item in node.items() if self.choose(item) != NO_VALUE}
        return node


def deployed(**values: str) -> dict[str, Any]:
    """Resources and Outputs as CloudFormation would create them with these parameter values."""
    deployment = Deployment(values)
    return {
        section: {
            name: deployment.choose(body)
            for name, body in template()[section].items()
            if "Condition" not in body or deployment.condition(body["Condition"])
        }
        for section in ("Resources", "Outputs")
    }


def test_alarms_notify_the_topic_only_when_an_email_is_given() -> None:
    assert default("AlarmEmail") == ""
    for name, body in resources_of_type(ALARM).items():
        assert body["Properties"]["AlarmActions"] == ALARM_ACTIONS, name
        assert body["Properties"]["OKActions"] == ALARM_ACTIONS, name

    quiet = deployed()
    assert "AlarmTopic" not in quiet["Resources"] and "AlarmTopicKey" not in quiet["Resources"]
    assert "AlarmTopicArn" not in quiet["Outputs"]
    alarms = {name: body for name, body in quiet["Resources"].items() if body["Type"] == ALARM}
    assert set(alarms) == set(EXPECTED_ALARMS)
    for name, body in alarms.items():
        assert "AlarmActions" not in body["Properties"] and "OKActions" not in body["Properties"], name

    notifying = deployed(AlarmEmail="ops@example.com")
    resources = notifying["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    assert notifying["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    for name, body in resources.items():
        if body["Type"] == ALARM:
            assert body["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
            assert body["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}], name
    # Without provisioned concurrency there is no spillover to watch.
    assert "ApiSpilloverAlarm" not in deployed(ProvisionedConcurrency="0")["Resources"]


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    """CloudWatch cannot publish to a topic under the AWS managed key (alias/aws/sns): its key policy
    does not let cloudwatch.amazonaws.com use it, and nobody can change that policy."""
    topic = properties("AlarmTopic")
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resource("AlarmTopicKey")
    assert key["Condition"] == resource("AlarmTopic")["Condition"] == "HasAlarmEmail"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    [cloudwatch] = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # The account keeps administering it (a key policy without it would lock the key).
    assert any(
        s["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
        for s in statements
    )
    assert re.fullmatch(template()["Parameters"]["AlarmEmail"]["AllowedPattern"], "ops@example.com")
    assert not re.fullmatch(template()["Parameters"]["AlarmEmail"]["AllowedPattern"], "not an address")


# --------------------------------------------------------------------------------------------------
# HTTP API: access logs and CORS.
# --------------------------------------------------------------------------------------------------

ACCESS_LOG_VARIABLES = {
    "$context.requestId",
    "$context.requestTime",
    "$context.httpMethod",
    "$context.routeKey",
    "$context.status",
    "$context.protocol",
    "$context.responseLatency",
    "$context.responseLength",
    "$context.integrationStatus",
    "$context.integrationLatency",
    "$context.integrationErrorMessage",
    "$context.error.message",
    "$context.error.responseType",
    "$context.identity.sourceIp",
}


def test_access_logs_are_json_lines_of_what_happened_never_of_what_was_sent() -> None:
    settings = properties("HttpApi")["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    log_group = resource("HttpApiAccessLogGroup")
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    text = settings["Format"]
    variables = re.findall(r"\$context\.[\w.]+", text)
    # Valid JSON whatever API Gateway writes: every variable a whole quoted string ("-" when missing).
    record = json.loads(re.sub(r"\$context\.[\w.]+", "-", text))
    assert all(value == "-" for value in record.values())
    assert len(record) == len(variables) == len(set(variables))
    assert set(variables) <= ACCESS_LOG_VARIABLES
    assert {"$context.requestId", "$context.status", "$context.routeKey"} <= set(variables)
    for variable in variables:  # nothing a client sent: no header, query string, body or identity
        assert not re.search(r"header|query|body|userAgent|authorizer|apiKey|user|caller|path", variable), (
            variable
        )
    assert template()["Outputs"]["HttpApiAccessLogGroupName"]["Value"] == {"Ref": "HttpApiAccessLogGroup"}


SAM_CORS_KEYS = (
    "AllowOrigins",
    "AllowHeaders",
    "AllowMethods",
    "ExposeHeaders",
    "MaxAge",
    "AllowCredentials",
)


def test_cors_is_off_by_default_and_on_with_origins() -> None:
    assert default("CorsOrigins") == ""
    assert "CorsConfiguration" not in deployed()["Resources"]["HttpApi"]["Properties"]

    origins = "https://app.example.com,https://admin.example.com"
    assert re.fullmatch(template()["Parameters"]["CorsOrigins"]["AllowedPattern"], origins)
    assert re.fullmatch(template()["Parameters"]["CorsOrigins"]["AllowedPattern"], "*")
    assert not re.fullmatch(
        template()["Parameters"]["CorsOrigins"]["AllowedPattern"], "https://a.com, https://b.com"
    )
    cors = deployed(CorsOrigins=origins)["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    # A String split by CloudFormation: SAM puts a parameter's value in place of a Ref to it, and a
    # list parameter may reach it as one joined string.
    assert cors["AllowOrigins"] == {"Fn::Split": [",", {"Ref": "CorsOrigins"}]}
    assert template()["Parameters"]["CorsOrigins"]["Type"] == "String"
    assert set(cors["AllowMethods"]) == {"GET", "POST", "OPTIONS"}
    route_methods = {route["Method"] for route in events("ApiFunction", "HttpApi").values()}
    assert route_methods <= set(cors["AllowMethods"])
    assert {header.lower() for header in cors["AllowHeaders"]} == {"authorization", "content-type"}
    assert 0 < cors["MaxAge"] <= 7200
    assert "AllowCredentials" not in cors  # keys are bearer tokens, not cookies
    # SAM renames these keys wherever they appear in an intrinsic CorsConfiguration's text.
    names = {
        node["Ref"]
        for node in walk(properties("HttpApi")["CorsConfiguration"])
        if isinstance(node, dict) and "Ref" in node
    }
    assert not any(key in name for name in names for key in SAM_CORS_KEYS)


# --------------------------------------------------------------------------------------------------
# S3 Batch Operations: the operations bucket and the role.
# --------------------------------------------------------------------------------------------------

OPERATIONS_ARN = "arn:aws:s3:::operations-bucket"


def allowed(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(action, resource) pairs, with ${OperationsBucket.Arn} evaluated."""
    pairs = set()
    for statement in statements:
        assert (
            statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        )
        assert "Condition" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for target in targets:
            if isinstance(target, dict) and "Fn::Sub" in target:
                target = target["Fn::Sub"].replace("${OperationsBucket.Arn}", OPERATIONS_ARN)
            pairs |= {(action, json.dumps(target)) for action in actions}
    return pairs


def test_batch_operations_may_do_exactly_a_reindex_and_nothing_else() -> None:
    role = properties("BatchOperationsRole")
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert not {"ManagedPolicyArns", "RoleName", "PermissionsBoundary"} & set(role)
    [policy] = role["Policies"]
    alias = json.dumps({"Ref": "IndexingFunction.Alias"})
    manifests, inventory, reports = (
        json.dumps(f"{OPERATIONS_ARN}/{prefix}/*") for prefix in ("manifests", "inventory", "reports")
    )
    assert allowed(policy["PolicyDocument"]["Statement"]) == {
        ("lambda:InvokeFunction", alias),
        ("s3:GetObject", manifests),
        ("s3:GetObjectVersion", manifests),
        ("s3:GetObject", inventory),
        ("s3:GetObjectVersion", inventory),
        ("s3:PutObject", reports),
    }
    # The alias the job invokes is the one the queue feeds and the command reads from the outputs.
    [mapping] = resources_of_type("AWS::Lambda::EventSourceMapping").values()
    assert json.dumps(mapping["Properties"]["FunctionName"]) == alias
    outputs = template()["Outputs"]
    assert json.dumps(outputs["IndexingFunctionAliasArn"]["Value"]) == alias
    assert outputs["BatchOperationsRoleArn"]["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}
    assert outputs["OperationsBucketName"]["Value"] == {"Ref": "OperationsBucket"}


def test_the_operations_bucket_is_private_transient_and_notifies_nothing() -> None:
    bucket = properties("OperationsBucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # no key policy for S3 to meet
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # Not a documents bucket: its manifests and reports must never be indexed.
    assert "NotificationConfiguration" not in bucket
    assert "OperationsBucket" not in json.dumps(properties("DocumentsQueuePolicy"))
    expiring = {
        rule["Prefix"]: rule["ExpirationInDays"]
        for rule in bucket["LifecycleConfiguration"]["Rules"]
        if "ExpirationInDays" in rule
    }
    assert {"manifests/", "reports/", "inventory/"} <= set(expiring)
    assert all(rule_days <= 30 for rule_days in expiring.values())

    policy = properties("OperationsBucketPolicy")
    assert policy["Bucket"] == {"Ref": "OperationsBucket"}
    deny, inventory = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["OperationsBucket", "Arn"]},
        {"Fn::Sub": "${OperationsBucket.Arn}/*"},
    ]
    assert inventory["Fn::If"][0] == "DocumentsInventoryEnabled" and inventory["Fn::If"][2] == NO_VALUE


def test_the_documents_inventory_is_optional_and_lands_where_batch_operations_reads() -> None:
    assert default("DocumentsInventory") == "false"
    off = deployed()["Resources"]
    assert "InventoryConfigurations" not in off["DocumentsBucket"]["Properties"]
    assert len(off["OperationsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]) == 1

    on = deployed(DocumentsInventory="true")["Resources"]
    [inventory] = on["DocumentsBucket"]["Properties"]["InventoryConfigurations"]
    assert inventory["Enabled"] is True
    assert (inventory["ScheduleFrequency"], inventory["IncludedObjectVersions"]) == ("Daily", "Current")
    assert set(inventory["OptionalFields"]) == {"Size", "LastModifiedDate", "ETag"}
    destination = inventory["Destination"]
    assert destination["BucketArn"] == {"Fn::GetAtt": ["OperationsBucket", "Arn"]}
    assert destination["Format"] == "CSV"
    prefix = destination["Prefix"].rstrip("/") + "/"
    # S3 writes it under the prefix; the bucket policy lets S3 do so, for this bucket only.
    _, delivery = on["OperationsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert delivery["Principal"] == {"Service": "s3.amazonaws.com"}
    assert delivery["Action"] == "s3:PutObject"
    assert delivery["Resource"] == {"Fn::Sub": f"${{OperationsBucket.Arn}}/{prefix}*"}
    assert delivery["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["DocumentsBucket", "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    # ... and the role may read it there.
    readable = {
        target
        for action, target in allowed(
            properties("BatchOperationsRole")["Policies"][0]["PolicyDocument"]["Statement"]
        )
        if action == "s3:GetObject"
    }
    assert json.dumps(f"{OPERATIONS_ARN}/{prefix}*") in readable
