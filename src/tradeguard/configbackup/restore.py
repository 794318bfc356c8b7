"""A restore, step by step; every step that can refuse comes before the first change.

1. verify the archive (:func:`.archive.read_archive`): intact, of a known format, exactly what
   its manifest lists;
2. validate its configuration with promtool and amtool in a scratch copy (:mod:`.validate`),
   and, when a local stack runs, as rendered for that stack;
3. show what would change and ask (the caller's ``confirm``);
4. back up the current configuration (same format, :func:`.archive.create_backup`), so the
   restore itself can be undone;
5. replace the files, each whole (:mod:`.replace`);
6. re-render a running stack's configuration and reload it, confirmed (:mod:`.reload`).

A failure in steps 1-3 leaves the disk exactly as it was. A failure after step 4 says where the
backup of the previous configuration is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tradeguard.configbackup.archive import BackupResult, create_backup, read_archive
from tradeguard.configbackup.errors import ConfigBackupError, ReloadError
from tradeguard.configbackup.reload import ReloadReport, reload_stack
from tradeguard.configbackup.replace import Plan, apply, plan_restore
from tradeguard.configbackup.validate import staged, validate, validate_rendered
from tradeguard.stack.layout import StackLayout


@dataclass(frozen=True)
class RestoreRequest:
    archive: Path
    deploy: Path
    backup_dir: Path  # where the backup of the current configuration goes
    run_dir: Path
    settings: Path | None = None  # where the archive's settings file goes, if anywhere
    dry_run: bool = False


@dataclass(frozen=True)
class RestoreOutcome:
    plan: Plan
    applied: bool
    previous: BackupResult | None = None  # the backup of what was there before
    reload: ReloadReport | None = None
    stack_running: bool = False


Say = Callable[[str], None]
Confirm = Callable[[Plan, StackLayout | None], bool]


def running_stack(run_dir: Path) -> StackLayout | None:
    """The layout of the local stack running from ``run_dir``, if one runs."""
    from tradeguard.stack.commands import running_layout

    return running_layout(run_dir)


def restore(request: RestoreRequest, confirm: Confirm, say: Say) -> RestoreOutcome:
    """Restore ``request.archive`` into ``request.deploy``; see the module's steps."""
    deploy = request.deploy
    if not deploy.is_dir():
        raise ConfigBackupError(f"deploy dir {deploy} does not exist")
    archive = read_archive(request.archive)
    manifest = archive.manifest
    say(
        f"archive verified: {len(manifest.files)} files, created {manifest.created_text} by "
        f"tradeguard {manifest.tradeguard_version}"
    )
    if manifest.secrets_left_out:
        say(
            f"the archive holds no secrets ({len(manifest.secrets_left_out)} left out at "
            "backup); the secrets on disk stay as they are"
        )
    settings = _settings_target(request.settings, archive.settings(), say)
    layout = running_stack(request.run_dir)
    say("validating the archive's configuration (promtool, amtool) ...")
    with staged(archive.deploy_files()) as paths:
        validate(paths, say)
        if layout is not None:
            validate_rendered(paths, layout)
            say(f"  rendered for the stack running from {request.run_dir}: ok")
    plan = plan_restore(deploy, archive.deploy_files(), manifest.include_secrets, settings)
    say(f"restore into {deploy}: {plan.summary()}")
    for line in plan.lines():
        say(f"  {line}")
    if request.dry_run:
        say("dry run: nothing changed")
        return RestoreOutcome(plan, applied=False, stack_running=layout is not None)
    if not confirm(plan, layout):
        raise ConfigBackupError("restore cancelled; nothing changed")
    previous = None
    if not plan.empty:
        current_settings = settings[0] if settings is not None and settings[0].is_file() else None
        previous = create_backup(
            deploy,
            request.backup_dir,
            settings=current_settings,
            include_secrets=manifest.include_secrets,
        )
        say(f"current configuration backed up to {previous.path} (restore it to undo)")
        try:
            apply(plan)
        except ConfigBackupError as exc:
            raise ConfigBackupError(
                f"{exc}; the files may now be part old, part restored: the previous "
                f"configuration is in {previous.path}"
            ) from None
        say(f"restored: {plan.summary()}")
    else:
        say("the configuration on disk already matches the archive; no file replaced")
    if layout is None:
        say(f"no local stack running from {request.run_dir}; nothing to reload")
        return RestoreOutcome(plan, applied=True, previous=previous)
    say(f"reloading the stack running from {request.run_dir} ...")
    try:
        report = reload_stack(deploy, layout, say)
    except ReloadError as exc:
        where = f"; the previous configuration is in {previous.path}" if previous else ""
        raise ReloadError(
            f"files restored, but the stack did not take them: {exc}{where}"
        ) from None
    for line in (report.prometheus, *report.alertmanagers):
        say(f"  {line}")
    return RestoreOutcome(plan, True, previous, report, stack_running=True)


def _settings_target(
    target: Path | None, archived: tuple[str, bytes] | None, say: Say
) -> tuple[Path, bytes] | None:
    """Where the archive's settings file goes (and its bytes), or None, saying why not."""
    if archived is None:
        if target is not None:
            say(f"the archive holds no settings file; {target} stays as it is")
        return None
    name, data = archived
    if target is None:
        say(f"the archive holds settings file {name}; give --settings FILE to restore it")
        return None
    return target, data
