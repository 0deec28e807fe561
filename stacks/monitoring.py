"""Monitoring: alarms to the alert topic (DLQs, function errors, a silent watchdog) and a dashboard."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_contracts.environment import metrics_namespace
from backup_contracts.fleet import Fleet

ALARM_PERIOD = Duration.minutes(5)
DASHBOARD_METRICS = {
    "BackupsSucceeded": "Backups per day",
    "BackupsFailed": "Failed backups per day",
    "BytesStored": "Bytes stored per day",
    "OverdueTargets": "Overdue targets",
}


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        fleet: Fleet,
        topic: sns.ITopic,
        dlqs: dict[str, sqs.IQueue],
        functions: dict[str, lambda_.IFunction],
        watchdog: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self._action = actions.SnsAction(topic)
        self.alarms: list[cloudwatch.Alarm] = []
        pipeline = fleet.pipeline.name
        for name, dlq in sorted(dlqs.items()):
            self._alarm(
                f"Dlq{_camel(name)}",
                dlq.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
                threshold=1,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                description=f"{pipeline}: dead-letter queue {name} has messages. Inspect them, fix the cause,"
                " then redrive or delete them.",
            )
        for name, function in sorted(functions.items()):
            self._alarm(
                f"Errors{_camel(name)}",
                function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
                threshold=1,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                description=f"{pipeline}: the {name} function failed. Check its log group for the error.",
            )
        interval = fleet.pipeline.watchdog_interval_minutes
        self.watchdog_silent = self._alarm(
            "WatchdogNotRunning",
            watchdog.metric_invocations(period=Duration.minutes(2 * interval), statistic="Sum"),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
            description=f"{pipeline}: the watchdog has not run for {2 * interval} minutes, so missed backups"
            " would go unnoticed. Check its schedule rule and the function's errors.",
        )
        self.dashboard = self._build_dashboard(pipeline)

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        description: str,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _build_dashboard(self, pipeline: str) -> cloudwatch.Dashboard:
        namespace = metrics_namespace(pipeline)

        def metric(name: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"service": pipeline},
                statistic="Maximum" if name == "OverdueTargets" else "Sum",
                period=Duration.hours(1) if name == "OverdueTargets" else Duration.days(1),
                label=label,
            )

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{pipeline}-backups")
        dashboard.add_widgets(
            *[
                cloudwatch.GraphWidget(title=label, left=[metric(name, label)], width=6)
                for name, label in DASHBOARD_METRICS.items()
            ]
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24),
        )
        return dashboard


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
