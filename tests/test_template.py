"""The SAM template cannot be deployed here, so these tests hold its wiring to the code it deploys:
the functions, their alias, provisioned concurrency, the warm-up schedule and the HTTP API."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cfn import (
    DOCKERFILE,
    FUNCTIONS,
    NO_VALUE,
    POWERTOOLS_VARIABLES,
    ROOT,
    SETTINGS_SOURCE,
    TEMPLATE_PATH,
    default,
    dockerfile_cmd,
    evaluate,
    events,
    function_environment,
    number,
    properties,
    resource,
    resources_of_type,
    template,
)
from embedding_engine.events.warmup import is_warmup_ping
from embedding_engine.events.warmup_fanout import MAX_WARMUP_CONCURRENCY, requested_concurrency


@pytest.mark.integration  # cfn-lint in a subprocess
def test_cfn_lint_passes_with_no_findings() -> None:
    """Errors, warnings and informational findings: `make test` gates on a clean template."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    executable = str(cfn_lint) if cfn_lint.exists() else shutil.which("cfn-lint")
    assert executable, "cfn-lint is not installed (requirements-dev.txt)"
    result = subprocess.run(
        [executable, "--include-checks", "I", "--", str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_both_functions_run_the_one_image_and_its_cmd() -> None:
    metadata = [resource(name)["Metadata"] for name in FUNCTIONS]
    # Identical build metadata: `sam build` builds the image once and gives both functions its URI.
    assert metadata[0] == metadata[1]
    assert (ROOT / metadata[0]["Dockerfile"]).is_file()
    assert metadata[0]["DockerContext"] == "."
    for name in FUNCTIONS:
        props = properties(name)
        assert props["PackageType"] == "Image"
        assert "ImageUri" not in props  # filled in by `sam build`
        assert "Handler" not in props and "Runtime" not in props
        # The image's own CMD, or the same handler spelled out.
        command = props.get("ImageConfig", {}).get("Command", dockerfile_cmd())
        assert command == dockerfile_cmd() == ["handler.lambda_handler"]
        assert "EntryPoint" not in props.get("ImageConfig", {})
    # One architecture for both, so the one build fits both.
    assert "Architectures" in template()["Globals"]["Function"]
    assert all("Architectures" not in properties(name) for name in FUNCTIONS)


def test_each_function_serves_the_model_baked_into_its_image() -> None:
    dockerfile_defaults = set(re.findall(r"^ARG MODEL_ID=(\S+)$", DOCKERFILE, re.MULTILINE))
    build_args = {resource(name)["Metadata"]["DockerBuildArgs"]["MODEL_ID"] for name in FUNCTIONS}
    assert len(dockerfile_defaults) == 1
    assert build_args == dockerfile_defaults
    # The image sets MODEL_PATH=/opt/model and MODEL_ID from its build argument. The template sets
    # neither, in Globals or a function: a value there would override the image's, and could name
    # another model than the one a function's image holds (a function built with a new MODEL_ID).
    assert re.search(r"^\s+MODEL_ID=\$\{MODEL_ID\}", DOCKERFILE, re.MULTILINE)
    for name in FUNCTIONS:
        assert not {"MODEL_ID", "MODEL_PATH"} & set(function_environment(name)), name


def test_every_environment_variable_is_read_by_the_code() -> None:
    for name in FUNCTIONS:
        for variable in function_environment(name):
            assert variable in POWERTOOLS_VARIABLES or f'"{variable}"' in SETTINGS_SOURCE, (name, variable)


@pytest.mark.parametrize(
    ("variable", "condition", "parameter"),
    [
        ("API_KEYS_SECRET_ARN", "HasApiKeysSecret", "ApiKeysSecretArn"),
        ("DATABASE_SECRET_ARN", "HasDatabaseSecret", "DatabaseSecretArn"),
        ("DATABASE_URL", "HasDatabaseUrl", "DatabaseUrl"),
    ],
)
def test_optional_settings_are_unset_when_their_parameter_is_empty(
    variable: str, condition: str, parameter: str
) -> None:
    assert default(parameter) == ""
    assert template()["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}
    values = [
        function_environment(name)[variable] for name in FUNCTIONS if variable in function_environment(name)
    ]
    assert values
    assert all(value == {"Fn::If": [condition, {"Ref": parameter}, NO_VALUE]} for value in values)


def test_api_keys_and_database_reach_the_functions_that_need_them() -> None:
    assert "API_KEYS_SECRET_ARN" in function_environment("ApiFunction")
    assert "API_KEYS_SECRET_ARN" not in function_environment("IndexingFunction")
    for name in FUNCTIONS:  # /search needs the store too
        assert {"DATABASE_SECRET_ARN", "DATABASE_URL"} <= set(function_environment(name))
    assert template()["Parameters"]["DatabaseUrl"]["NoEcho"] is True


def test_the_api_function_serves_from_a_live_alias_with_optional_provisioned_concurrency() -> None:
    api = properties("ApiFunction")
    assert api["AutoPublishAlias"] == "live"
    assert api["AutoPublishAliasAllProperties"] is True
    assert api["ProvisionedConcurrencyConfig"] == {
        "Fn::If": [
            "HasProvisionedConcurrency",
            {"ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}},
            NO_VALUE,
        ]
    }
    assert template()["Conditions"]["HasProvisionedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ProvisionedConcurrency"}, 0]}]
    }
    assert number("ProvisionedConcurrency", "MinValue") == 0
    assert "ProvisionedConcurrencyConfig" not in properties("IndexingFunction")
    assert properties("IndexingFunction")["AutoPublishAlias"] == "live"


def test_auto_scaling_tracks_the_alias_provisioned_concurrency() -> None:
    alias_resource = f"ApiFunctionAlias{properties('ApiFunction')['AutoPublishAlias']}"
    [(target_name, target)] = resources_of_type("AWS::ApplicationAutoScaling::ScalableTarget").items()
    assert target["Condition"] == "HasProvisionedConcurrency"
    assert alias_resource in (
        [target["DependsOn"]] if isinstance(target["DependsOn"], str) else target["DependsOn"]
    )
    scaling = target["Properties"]
    assert scaling["ServiceNamespace"] == "lambda"
    assert scaling["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert scaling["ResourceId"] == {"Fn::Sub": "function:${ApiFunction}:live"}
    assert scaling["MinCapacity"] == {"Ref": "ProvisionedConcurrency"}
    assert scaling["MaxCapacity"] == {"Ref": "ProvisionedConcurrencyMax"}
    assert number("ProvisionedConcurrency") <= number("ProvisionedConcurrencyMax")

    [policy] = resources_of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert policy["Condition"] == "HasProvisionedConcurrency"
    config = policy["Properties"]
    assert config["PolicyType"] == "TargetTrackingScaling"
    assert config["ScalingTargetId"] == {"Ref": target_name}
    tracking = config["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
    }
    assert tracking["TargetValue"] == {"Ref": "ProvisionedConcurrencyTargetUtilization"}
    assert 0 < number("ProvisionedConcurrencyTargetUtilization") < 1


def test_the_warmup_schedule_sends_a_ping_the_handler_recognises() -> None:
    [schedule] = events("ApiFunction", "ScheduleV2").values()
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    ping = json.loads(evaluate(schedule["Input"]))
    assert is_warmup_ping(ping)
    assert requested_concurrency(ping) == default("WarmupConcurrency") == ping["concurrency"]
    # The code clamps to MAX_WARMUP_CONCURRENCY; the template must not promise more.
    assert number("WarmupConcurrency", "MaxValue") <= MAX_WARMUP_CONCURRENCY
    assert schedule["State"] == {"Fn::If": ["WarmupEnabled", "ENABLED", "DISABLED"]}
    assert schedule["OmitName"] is True  # no fixed name to collide across stacks
    assert not events("IndexingFunction", "ScheduleV2")


def test_the_api_function_may_invoke_only_itself_for_the_warmup_fan_out() -> None:
    [policy] = resources_of_type("AWS::IAM::RolePolicy").values()
    props = policy["Properties"]
    assert props["RoleName"] == {"Ref": "ApiFunctionRole"}  # SAM's generated role for ApiFunction
    [statement] = props["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["ApiFunction", "Arn"]},
        {"Fn::Sub": "${ApiFunction.Arn}:*"},  # the live alias (context.invoked_function_arn) and versions
    ]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_refers_to_itself(function: str) -> None:
    """SAM puts Policies in the function's role, which the function depends on: naming the function
    there (or anywhere in its own properties) is a circular dependency that cfn-lint, reading the
    template before SAM's transform, does not report."""
    own = {key: value for key, value in properties(function).items() if key != "Events"}
    assert function not in json.dumps(own)


def test_the_http_api_routes_are_the_app_routes_on_the_live_alias(handler_module: Any) -> None:
    app_routes = {
        (method, route.path)
        for route in handler_module.app.routes
        for method in route.methods - {"HEAD"}  # Starlette adds HEAD to every GET route
    }
    routes = events("ApiFunction", "HttpApi").values()
    assert {(route["Method"], route["Path"]) for route in routes} == app_routes
    assert len(app_routes) == 8  # routes.ROUTES: the API's 5, /openapi.json, /docs and its files
    for route in routes:
        assert route["ApiId"] == {"Ref": "HttpApi"}
        assert route["PayloadFormatVersion"] == "2.0"
    throttling = properties("HttpApi")["DefaultRouteSettings"]
    assert throttling == {
        "ThrottlingBurstLimit": {"Ref": "HttpThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "HttpThrottlingRateLimit"},
    }
    assert "Auth" not in properties("HttpApi")  # the function checks the keys (ApiKeysSecretArn)
    # The HTTP API gives up after 30 s; a longer function timeout would only waste compute.
    assert number("ApiTimeout", "MaxValue") <= 30


def test_the_request_deadline_and_token_budget_follow_the_api_timeout() -> None:
    assert function_environment("ApiFunction")["REQUEST_TIMEOUT_SECONDS"] == {"Ref": "ApiTimeout"}
    assert "REQUEST_TIMEOUT_SECONDS" not in function_environment("IndexingFunction")  # Lambda's deadline
    assert number("ApiTimeout", "MaxValue") <= 30  # what the HTTP API waits for
