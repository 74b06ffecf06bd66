"""Options are declared once (s3flow/options.py): the CLI, the flow and the engine agree."""
from __future__ import annotations

import inspect

import pytest

from s3flow import options
from s3flow.cli import parser
from s3flow.config import MiB, TransferConfig
from s3flow.errors import InputError


def test_the_flow_parameters_are_the_options_with_their_defaults_and_descriptions():
    from prefect.utilities.callables import parameter_schema

    from s3flow.flows.transfer import transfer_manifest

    signature = inspect.signature(transfer_manifest.fn).parameters
    assert set(signature) <= set(options.BY_NAME)
    for name, parameter in signature.items():
        if parameter.default is not inspect.Parameter.empty:
            assert parameter.default == options.default(name), name
    schema = parameter_schema(transfer_manifest)  # what `prefect deploy` sends, and the UI shows
    for name in signature:
        assert schema.properties[name]["description"] == options.BY_NAME[name].help, name


@pytest.mark.parametrize("command", ["transfer", "plan", "verify"])
def test_each_command_shows_the_options_it_uses_with_the_true_defaults(command):
    text = parser().parse_args([command, "m.csv"]).__dict__
    wanted = {o.name for o in options.OPTIONS if command in o.commands}
    assert wanted <= set(text)
    shown = {o.name for o in options.OPTIONS if o.name in text}
    assert shown == wanted, shown ^ wanted  # no copy-only flag on plan or verify
    for name in wanted - {"manifest", "header", "filters"}:
        option = options.BY_NAME[name]
        if not option.action:
            assert text[name] == option.default, name


def test_help_is_the_options_text():
    sub = parser()._subparsers._group_actions[0].choices
    transfer_help = sub["transfer"].format_help()
    assert "(default 2000)" in " ".join(transfer_help.split())
    plan_help = sub["plan"].format_help()
    for copy_only in ("--storage-class", "--sse", "--checksum", "--batch-files", "--acl"):
        assert copy_only not in plan_help and copy_only not in sub["verify"].format_help()


def test_the_config_of_the_defaults_is_the_engines_default():
    assert options.config_from({}) == TransferConfig()
    config = options.config_from({"multipart_threshold_mib": 16, "checksum_algorithm": "none",
                                  "filters": ["exclude:*.tmp"]})
    assert (config.multipart_threshold, config.checksum_algorithm, config.filters) == (
        16 * MiB, None, (("exclude", "*.tmp"),))
    with pytest.raises(InputError, match="part size"):
        options.config_from({"part_size_mib": 1})
