"""A1111 sampler and scheduler names -> pixelserve's sampler table (core/samplers.py).

A1111 (v1.10, ``sd_samplers.get_sampler_and_scheduler``) names a sampler by label ("DPM++ 2M") or
alias ("k_dpmpp_2m"), and a schedule separately (``scheduler``: "karras" or "Karras"); a legacy
label carries the schedule as a suffix ("DPM++ 2M Karras"). "Automatic" is the sampler's own
default schedule. Unlike A1111, which silently falls back to its first sampler, an unknown or
unbuilt name is a 400 naming the field.

``SAMPLERS`` and ``SCHEDULERS`` are what ``GET /sdapi/v1/samplers`` and ``/schedulers`` list
(endpoints.py): only the combinations this server builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelserve.core.samplers import SAMPLERS as CORE
from pixelserve.errors import InvalidRequest


@dataclass(frozen=True)
class Schedule:
    name: str
    label: str
    aliases: tuple[str, ...] = ()
    default_rho: float = -1.0
    need_inner_model: bool = False

    def wire(self) -> dict:
        return {"name": self.name, "label": self.label, "aliases": list(self.aliases) or None,
                "default_rho": self.default_rho, "need_inner_model": self.need_inner_model}


#: The schedules built here (A1111 ``sd_schedulers.schedulers``, the subset diffusers offers).
#: "uniform" is the model's own sigmas, diffusers' default spacing.
SCHEDULERS: tuple[Schedule, ...] = (
    Schedule("automatic", "Automatic"),
    Schedule("uniform", "Uniform"),
    Schedule("karras", "Karras", default_rho=7.0),
    Schedule("exponential", "Exponential"),
)
#: A1111 schedules that exist there but not here: named in the 400.
UNBUILT_SCHEDULES = ("polyexponential", "sgm_uniform", "SGMUniform", "kl_optimal", "align_your_steps", "simple",
                     "normal", "ddim", "beta", "Polyexponential", "SGM Uniform", "KL Optimal", "Align Your Steps",
                     "Simple", "Normal", "DDIM", "Beta")


@dataclass(frozen=True)
class Sampler:
    label: str
    aliases: tuple[str, ...]
    #: schedule name -> core sampler name; "automatic" -> the default's entry.
    schedules: dict[str, str]
    default: str = "uniform"  # the schedule "Automatic" means (A1111 ``options["scheduler"]``)
    options: dict = field(default_factory=dict)

    def wire(self) -> dict:
        return {"name": self.label, "aliases": list(self.aliases), "options": dict(self.options)}


def _s(label: str, aliases: tuple[str, ...], default: str = "uniform", **schedules: str) -> Sampler:
    options = {"scheduler": default} if default != "uniform" else {}
    return Sampler(label, aliases, schedules, default, options)


#: In A1111's order (``sd_samplers_kdiffusion`` then the timestep samplers); only those built here.
SAMPLERS: tuple[Sampler, ...] = (
    _s("DPM++ 2M", ("k_dpmpp_2m",), "karras", uniform="dpm++_2m", karras="dpm++_2m_karras",
       exponential="dpm++_2m_exponential"),
    _s("DPM++ SDE", ("k_dpmpp_sde",), "karras", uniform="dpm++_sde", karras="dpm++_sde_karras"),
    _s("DPM++ 2M SDE", ("k_dpmpp_2m_sde",), "exponential", uniform="dpm++_2m_sde", karras="dpm++_2m_sde_karras",
       exponential="dpm++_2m_sde_exponential"),
    _s("Euler a", ("k_euler_a", "k_euler_ancestral"), uniform="euler_a"),
    _s("Euler", ("k_euler",), uniform="euler", karras="euler_karras", exponential="euler_exponential"),
    _s("LMS", ("k_lms",), uniform="lms", karras="lms_karras"),
    _s("Heun", ("k_heun",), uniform="heun", karras="heun_karras"),
    _s("DPM2", ("k_dpm_2",), uniform="dpm2", karras="dpm2_karras"),
    _s("DPM2 a", ("k_dpm_2_a",), uniform="dpm2_a", karras="dpm2_a_karras"),
    _s("DDIM", ("ddim",), uniform="ddim"),
    _s("PLMS", ("plms",), uniform="pndm"),
    _s("UniPC", ("unipc",), uniform="unipc"),
    _s("LCM", ("k_lcm",), uniform="lcm"),
)
#: A1111 samplers that are not built here (no diffusers scheduler): named in the 400.
UNBUILT_SAMPLERS = ("DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "DPM fast", "DPM adaptive", "Restart",
                    "DDIM CFG++", "Euler CFG++")
DEFAULT_SAMPLER = "Euler"  # A1111's sampler_index default

_BY_NAME = {n.lower(): s for s in SAMPLERS for n in (s.label, *s.aliases)}
_SCHEDULE_NAMES = {n.lower(): sch.name for sch in SCHEDULERS for n in (sch.name, sch.label, *sch.aliases)}

assert all(core in CORE for s in SAMPLERS for core in s.schedules.values()), "an A1111 sampler names no core sampler"


@dataclass(frozen=True)
class Resolved:
    sampler: str  # core sampler name (GenerationRequest.scheduler)
    label: str  # A1111 label, for the infotext ("Sampler: DPM++ 2M")
    schedule: str  # A1111 schedule label reported ("Schedule type: Karras"), "Automatic" for the default


def _split_suffix(name: str) -> tuple[str, str | None]:
    """"DPM++ 2M Karras" -> ("DPM++ 2M", "karras"); a name without a schedule suffix is returned as is."""
    lowered = name.lower()
    for suffix in sorted({*_SCHEDULE_NAMES, *(u.lower() for u in UNBUILT_SCHEDULES)}, key=len, reverse=True):
        if lowered.endswith(" " + suffix) and lowered[: -len(suffix) - 1] in _BY_NAME:
            return name[: -len(suffix) - 1], name[-len(suffix):]
    return name, None


def resolve(sampler_name: str | None, scheduler: str | None = None, *, field: str = "sampler_name") -> Resolved:
    """The core sampler for A1111's (sampler_name, scheduler); InvalidRequest naming the field."""
    name = (sampler_name or DEFAULT_SAMPLER).strip()
    base, suffix = _split_suffix(name)
    sampler = _BY_NAME.get(base.lower())
    if sampler is None:
        if base in UNBUILT_SAMPLERS:
            raise InvalidRequest(f"Sampler {base!r} is not available on this server (no diffusers scheduler); "
                                 f"available: {', '.join(s.label for s in SAMPLERS)}", field=field)
        raise InvalidRequest(f"Sampler not found: {name!r}; available: {', '.join(s.label for s in SAMPLERS)}",
                             field=field)
    schedule_field = "scheduler"
    wanted = scheduler
    if suffix is not None and (scheduler is None or scheduler.lower() == "automatic"):
        wanted, schedule_field = suffix, field
    schedule = _SCHEDULE_NAMES.get((wanted or "automatic").strip().lower())
    if schedule is None:
        known = ", ".join(s.label for s in SCHEDULERS)
        what = "is not available on this server" if wanted in UNBUILT_SCHEDULES else "not found"
        raise InvalidRequest(f"Scheduler {wanted!r} {what}; available: {known}", field=schedule_field)
    chosen = sampler.default if schedule == "automatic" else schedule
    core = sampler.schedules.get(chosen)
    if core is None:
        built = ", ".join(sorted(sampler.schedules))
        raise InvalidRequest(f"Sampler {sampler.label!r} with the {chosen} schedule is not available on this "
                             f"server; it runs with: {built}", field=schedule_field)
    label = "Automatic" if chosen == sampler.default else next(s.label for s in SCHEDULERS if s.name == chosen)
    return Resolved(core, sampler.label, label)


def samplers_wire() -> list[dict]:
    """``GET /sdapi/v1/samplers``."""
    return [s.wire() for s in SAMPLERS]


def schedulers_wire() -> list[dict]:
    """``GET /sdapi/v1/schedulers``."""
    return [s.wire() for s in SCHEDULERS]
