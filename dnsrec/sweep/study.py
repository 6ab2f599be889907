"""The Optuna study of a sweep, stored in the results database (one URL holds everything).

Optuna keeps its own tables (and its own `alembic_version`) beside dnsrec's prefixed ones. A study is
continued only with the same search space, objectives and base run config: anything else would mix
incomparable trials, so it is refused with the keys that differ.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from dnsrec.config.sweep import SweepConfig
from dnsrec.errors import ConfigError
from dnsrec.results.retry import DbGrace, retried


def storage_url(db_url: str | None) -> str:
    from dnsrec.results.database import resolve_url

    return resolve_url(db_url).render_as_string(hide_password=False)


def open_study(cfg: SweepConfig, base: dict[str, Any], db_url: str | None, grace: DbGrace | None = None) -> Any:
    """The sweep's study, created or continued; `grace`: how its storage waits out a database that is away."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    storage = _storage(storage_url(db_url))
    storage.grace = grace
    study = optuna.create_study(
        study_name=cfg.name,
        storage=storage,
        directions=cfg.directions,  # type: ignore[arg-type]
        sampler=_sampler(cfg, 0),
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != cfg.directions:
        raise ConfigError(
            f"sweep '{cfg.name}' exists with objectives {study.user_attrs.get('sweep', {}).get('objectives')}; "
            "choose another sweep.name for different objectives"
        )
    study.sampler = _sampler(cfg, len(study.trials))
    stored_sweep, stored_base = study.user_attrs.get("sweep"), study.user_attrs.get("base")
    if stored_sweep is None:
        study.set_user_attr("sweep", cfg.study_attrs())
        study.set_user_attr("base", base)
        study.set_user_attr("trials", cfg.trials)
        study.set_user_attr("parallel", cfg.parallel)
        return study
    differ = _differences(stored_sweep, cfg.study_attrs(), "sweep.") + _differences(stored_base, base, "")
    if differ:
        raise ConfigError(
            f"sweep '{cfg.name}' exists with a different configuration ({'; '.join(differ[:4])}); "
            "continue it with the same settings, or start a new one with another sweep.name"
        )
    study.set_user_attr("trials", cfg.trials)
    study.set_user_attr("parallel", cfg.parallel)
    return study


SETUP_ATTEMPTS = 8
# Every RDBStorage call the driver makes (through Study, Trial and Optuna's cache, `_CachedStorage`): each one retried
# through the storage's DbGrace when the connection is lost (a PostgreSQL restart used to kill the driver
# with Optuna's "invalid data in the commit" message).
_STORAGE_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "get_best_trial",
    # the private ones Optuna's cache calls on its backend (optuna 5.0 storages/_cached_storage.py)
    "_create_new_trial", "_get_best_trial_id", "_get_trials", "_set_trial_param",
)  # fmt: skip


@functools.cache
def _resilient_storage() -> Any:
    """RDBStorage whose calls wait out a lost connection (its `grace`, None: never)."""
    import optuna

    base = optuna.storages.RDBStorage
    methods = {name: retried(getattr(base, name)) for name in _STORAGE_CALLS}
    return type("ResilientRDBStorage", (base,), {"grace": None, **methods})


def _storage(url: str) -> Any:
    """Optuna's RDBStorage on `url`. Its first use creates Optuna's tables and stamps its `alembic_version`,
    and two processes doing that at once on a fresh database collide (SQLite: "table studies already
    exists", UNIQUE on alembic_version; PostgreSQL: UniqueViolation): the loser tries again, and finds
    the tables the winner made."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60} if sqlite else {"connect_timeout": 5}}
    if not sqlite:
        engine_kwargs["pool_pre_ping"] = True  # a connection the server dropped (a restart) is replaced, not used
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            return _resilient_storage()(url, engine_kwargs=engine_kwargs)
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            if attempt == SETUP_ATTEMPTS:
                raise _unusable(url, e) from e
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _unusable(url: str, error: BaseException) -> Exception:
    """One line for a storage that cannot be set up (a full disk, a refused login), not Optuna's traceback
    ("invalid data in the commit")."""
    from sqlalchemy.exc import DBAPIError

    from dnsrec.results import DatabaseUnavailable
    from dnsrec.results.database import describe_db_error, masked, resolve_url

    parsed = resolve_url(url)
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, DBAPIError):
        cause = cause.__cause__ or cause.__context__
    why = describe_db_error(cause, parsed) if isinstance(cause, DBAPIError) else str(error).splitlines()[0]
    return DatabaseUnavailable(f"cannot set up the sweep's Optuna storage in {masked(parsed)}: {why}")


def _sampler(cfg: SweepConfig, seed_offset: int) -> Any:
    """Seeded, but shifted by the trials already in the study: a continued sweep must not replay the
    random start-up points it already tried."""
    import optuna

    seed = cfg.seed + 1_000_003 * seed_offset
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler({p.key: list(p.choices) for p in cfg.space}, seed=seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, cfg.trials // 3)))


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: was {old!r}, now {new!r}"]


def sweep_status_line(name: str, db_url: str | None) -> str:
    """The driver's status line for a sweep running anywhere that writes to this database."""
    import optuna
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError

    from dnsrec.results import DatabaseUnavailable
    from dnsrec.results.database import describe_db_error, masked, resolve_url
    from dnsrec.sweep.status import sweep_status

    optuna.logging.set_verbosity(logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage_url(db_url))
    except KeyError as e:
        raise ConfigError(f"no sweep named '{name}' in the results database") from e
    except StorageInternalError as e:
        raise ConfigError(f"cannot read sweeps from {masked(resolve_url(db_url))}: {e}") from e
    except DBAPIError as e:  # unreachable, wrong password: one line, as `results list` gives
        url = resolve_url(db_url)
        raise DatabaseUnavailable(
            f"cannot reach the results database {masked(url)}: {describe_db_error(e, url)}"
        ) from e
    attrs = study.user_attrs
    objectives = attrs.get("sweep", {}).get("objectives", ["ndcg", "flops"])
    target, parallel = int(attrs.get("trials", 0)), int(attrs.get("parallel", 1))
    return sweep_status(name, study.get_trials(deepcopy=False), target, parallel, objectives).line()
