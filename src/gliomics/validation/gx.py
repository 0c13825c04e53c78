"""Running expectation suites with Great Expectations, reporting per problem.

Each suite is a list of :class:`Check`: a GX expectation plus a function that
turns one unexpected row (or the table-level result) into a one-line message
naming the file or row. :func:`run_checks` validates data frames in one
ephemeral GX context, writes GX Data Docs, and returns the messages and the
raw GX validation results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import great_expectations as gx
from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                        ProgressBarsConfig)

# GX reports usage analytics by default; this platform runs offline.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

Formatter = Callable[[dict[str, Any]], str]


@dataclass
class Check:
    """One expectation and how to word each failure.

    ``describe`` gets, for row-level expectations, a dict with the suite's
    id columns of one unexpected row; for table-level ones, GX's ``result``.
    """

    expectation: Any
    describe: Formatter
    table_level: bool = False


@dataclass
class Suite:
    name: str
    frame: Any  # pandas DataFrame
    checks: list[Check]
    #: Columns GX should return for each unexpected row (to name the file/row).
    id_columns: list[str] = field(default_factory=list)


@dataclass
class SuiteOutcome:
    name: str
    success: bool
    problems: list[str]
    result: dict


def run_checks(suites: list[Suite], data_docs_dir: Path | None = None) -> list[SuiteOutcome]:
    """Validate every suite; build Data Docs into ``data_docs_dir`` if given."""
    sites = {}
    if data_docs_dir is not None:
        sites["local_site"] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(data_docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    source = context.data_sources.add_pandas("gliomics")
    outcomes = []
    for suite in suites:
        asset = source.add_dataframe_asset(suite.name)
        batch_definition = asset.add_batch_definition_whole_dataframe(suite.name)
        gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
        checks_by_id = {}
        for check in suite.checks:
            added = gx_suite.add_expectation(check.expectation)
            checks_by_id[added.id] = check
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=gx_suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": suite.id_columns,
                },
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": suite.frame})
        (validation,) = result.run_results.values()
        problems = []
        for expectation_result in validation.results:
            if not expectation_result.success:
                check = checks_by_id[expectation_result.expectation_config.id]
                problems.extend(_describe_failure(check, expectation_result))
        outcomes.append(SuiteOutcome(suite.name, bool(result.success), problems, validation.describe_dict()))
    if sites:
        # Once for all suites (an UpdateDataDocsAction per checkpoint rebuilds the site each time).
        context.build_data_docs()
    return outcomes


def _describe_failure(check: Check, expectation_result) -> list[str]:
    info = expectation_result.exception_info or {}
    if info.get("raised_exception"):
        return [f"expectation {expectation_result.expectation_config.type} could not run: "
                f"{str(info.get('exception_message', '')).splitlines()[0]}"]
    result = expectation_result.result or {}
    if check.table_level:
        return [check.describe(result)]
    rows = result.get("unexpected_index_list") or []
    return [check.describe(row) for row in rows]
