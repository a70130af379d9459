"""A training session: one job's model, optimizer, schedule and named state, and how one step runs.

The state s_t is the set of named tensors that fully determine step t:

    param/<name>             model parameters
    buffer/<name>            model buffers (BatchNorm's running statistics, …)
    optim/<param>/<key>      optimizer state (appears once the optimizer has created it)
    lr/<group>               float64: each parameter group's learning rate (schedulers change it)
    data/<name>              the data set
    seed, step               int64 scalars: the job seed and t
    batch                    int64 [batch_size × accumulation_steps]: the examples of step t

One step, as a plain PyTorch loop would run it:

    model.train(); optimizer.zero_grad(set_to_none=True)
    for each of the accumulation_steps micro-batches m:
        loss_m = compute_loss(model, m); (loss_m / accumulation_steps).backward()   # plain loss when 1
    clip_grad_norm_(model.parameters(), grad_clip, foreach=False)                  # when the task sets it
    optimizer.step(); scheduler.step()                                              # when the task has one
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import protocol.ops  # noqa: F401  (registers pinpoint's operators)
from protocol.autocast import protocol_autocast
from protocol.encoding import compute_data_hash, compute_digest, compute_digest_of_opening, compute_header
from protocol.hint import compute_structure_hint
from protocol.initial import initialize_parameters
from protocol.job import JobSpec
from protocol.ops.prims import REFERENCE
from protocol.recording import PrimitivesFor, Recorder, ReproducibleMode, RngContext, Tamper, perturb
from protocol.rnn import protocol_rnn
from protocol.scalar_mode import protocol_items, protocol_math
from protocol.state import get_sorted_names
from protocol.task import Task, TaskError
from protocol.trace import Skeleton, StepTrace
from protocol.types import Root


class StateError(ValueError):
    """A state that does not fit the job: missing, extra or mis-shaped tensors."""


class Session:
    """Holds the live tensors of one job on one device and runs its steps."""

    def __init__(self, job: JobSpec, task: Task, device: str | torch.device = "cpu", meta: bool = False, initialize: bool = True) -> None:
        """A session at s_0 (`initialize`), or with uninitialised parameters for `load_state` to fill;
        with `meta`, every tensor except the one-element counters is a meta tensor (shapes only).

        The task must be the job's: its digest and its data set's root are checked here."""
        if task.digest.hex() != job.task:
            raise TaskError(f"task {task.name} is not the job's task (digest {task.digest.hex()[:16]}…, the job names {job.task[:16]}…)")
        if task.data_root().hex() != job.data:
            raise TaskError(f"the data set task {task.name} loads here is not the job's (its content root differs): "
                            "check the versions of the packages the task reads its data from")
        self.job = job
        self.task = task
        self.device = torch.device(device)
        target = torch.device("meta") if meta else self.device
        # A restored session (not `initialize`) is built as at s_0 but without the protocol's redraw
        # (the checkpoint overwrites every value); building for real, not on meta then to_empty,
        # keeps parameters a model ties together (shared embeddings) one parameter.
        self.model = build_model(task, job.seed, meta=meta, redraw=initialize).to(target)
        self.param_names = {id(p): name for name, p in self.model.named_parameters()}
        self.optimizer = _call(task, "build_optimizer", task.build_optimizer, self.model.parameters())
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise TaskError(f"task {task.name}: build_optimizer returned a {type(self.optimizer).__name__}, not a torch.optim.Optimizer")
        for group in self.optimizer.param_groups:
            # torch picks the foreach form by device when the task leaves it open (for-loop on CPU and
            # meta tensors, foreach on CUDA): the step's operator graph must not depend on the device.
            if "foreach" in group and group["foreach"] is None:
                group["foreach"] = False
        self.scheduler = None
        if task.build_scheduler is not None:
            with protocol_math():  # a scheduler computes the first learning rate when it is made
                self.scheduler = _call(task, "build_scheduler", task.build_scheduler, self.optimizer)
            if not callable(getattr(self.scheduler, "step", None)) or _needs_arguments(self.scheduler.step):
                raise TaskError(f"task {task.name}: the scheduler must step without arguments, once per step "
                                "(schedules driven by a metric, like ReduceLROnPlateau, are not supported)")
        self._normalise_learning_rates()
        self.data = {name: t.to(target) for name, t in task.data().items()}
        self.accumulation = task.accumulation_steps
        self.seed = torch.tensor(job.seed, dtype=torch.int64, device=self.device)
        self.step = torch.tensor(0, dtype=torch.int64, device=self.device)
        self.batch = self._draw_batch()

    @property
    def dataset_size(self) -> int:
        """How many examples batches draw from (the data set's first dimension)."""
        return int(next(iter(self.data.values())).shape[0])

    def _draw_batch(self) -> torch.Tensor:
        count = self.job.batch_size * self.accumulation
        return torch.ops.pinpoint.batch_indices(self.seed, self.step, self.dataset_size, count)

    # --- the named state -----------------------------------------------------------------------

    def _optimizer_entries(self) -> Iterator[tuple[str, Any]]:
        for param in self.model.parameters():
            entry = self.optimizer.state.get(param, {})
            for key, value in entry.items():
                yield f"optim/{self.param_names[id(param)]}/{key}", value

    def _normalise_learning_rates(self) -> None:
        """Every group's learning rate as a Python float: an int from the task (`lr=1`) would be
        recorded as an int argument by a fresh session and as a float by a restored one."""
        for group in self.optimizer.param_groups:
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = float(group["lr"])

    def _schedule(self) -> dict[str, torch.Tensor]:
        """The scheduler's position as tensors (`sched/<path>`): every number of its `state_dict()`
        (ints as int64, floats as float64, bools as bool), by the path of keys and list indices that
        leads to it. Strings, None and callables are the task's construction, not state."""
        if self.scheduler is None:
            return {}
        return dict(_flatten_numbers("sched", self.scheduler.state_dict(), self.device))

    def _learning_rates(self) -> dict[str, torch.Tensor]:
        rates = {}
        for index, group in enumerate(self.optimizer.param_groups):
            lr = group["lr"]
            if isinstance(lr, torch.Tensor):
                raise StateError("a tensor learning rate is not supported; give the optimizer a float")
            rates[f"lr/{index}"] = torch.tensor(float(lr), dtype=torch.float64, device=self.device)
        return rates

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """s_t as name → live tensor (the objects the next step reads and writes; `lr/*` are copies)."""
        tensors: dict[str, torch.Tensor] = {}
        for name, param in self.model.named_parameters():
            tensors[f"param/{name}"] = param
        for name, buffer in self.model.named_buffers():
            tensors[f"buffer/{name}"] = buffer
        for name, value in self._optimizer_entries():
            if not isinstance(value, torch.Tensor):
                raise StateError(f"optimizer state {name} is a {type(value).__name__}, not a tensor")
            tensors[name] = value
        tensors.update(self._learning_rates())
        tensors.update(self._schedule())
        tensors.update(self.data)
        tensors["seed"] = self.seed
        tensors["step"] = self.step
        tensors["batch"] = self.batch
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Make the live state equal to `tensors` (a checkpoint's, data excluded, or a full state)."""
        expected = {name: t for name, t in self.state_tensors().items() if not name.startswith(("optim/", "data/"))}
        for name, live in expected.items():
            if name not in tensors:
                raise StateError(f"state is missing {name}")
            value = tensors[name]
            if name.startswith("sched/") and value.shape == () and value.dtype in SCHEDULE_DTYPES:
                continue  # a scheduler's number may change type as it runs (an int lr becomes a float)
            if value.dtype != live.dtype or value.shape != live.shape:
                raise StateError(f"{name}: expected {live.dtype} {tuple(live.shape)}, got {value.dtype} {tuple(value.shape)}")
        params = dict(self.model.named_parameters())
        optim: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optim/"):
                param_name, _, key = name[len("optim/") :].rpartition("/")
                if param_name not in params:
                    raise StateError(f"optimizer state {name} names no parameter")
                optim.setdefault(params[param_name], {})[key] = self._place(value)
            elif name not in expected and not name.startswith("data/"):
                raise StateError(f"state has an unexpected tensor {name}")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(tensors[f"param/{name}"])
            for name, buffer in self.model.named_buffers():
                buffer.copy_(tensors[f"buffer/{name}"])
        self.optimizer.state.clear()
        self.optimizer.state.update(optim)
        self.seed = self._place(tensors["seed"])
        self.step = self._place(tensors["step"])
        self.batch = self._place(tensors["batch"])
        if self.seed.device.type != "meta" and int(self.seed) != self.job.seed:
            raise StateError(f"state seed {int(self.seed)} is not the job's seed {self.job.seed}")
        if self.step.device.type != "meta" and not 0 <= int(self.step) <= self.job.steps:
            raise StateError(f"state step {int(self.step)} is outside the job's steps 0…{self.job.steps}")
        self._restore_schedule(tensors)

    def _restore_schedule(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put the scheduler where the state says (its `sched/*` numbers, in O(1) whatever the step)
        and take the learning rates the state records."""
        known = all(t.device.type != "meta" for name, t in tensors.items() if name.startswith("sched/"))
        if self.scheduler is not None and known:  # a skeleton's meta state carries no values
            try:
                self.scheduler.load_state_dict(_rebuild_numbers("sched", self.scheduler.state_dict(), tensors))
            except (TypeError, ValueError, KeyError, IndexError) as error:
                raise StateError(f"the scheduler cannot take the state's sched/* values: {error}") from error
        for index, group in enumerate(self.optimizer.param_groups):
            recorded = tensors[f"lr/{index}"]
            if recorded.device.type == "meta":
                continue
            group["lr"] = float(recorded)

    def _place(self, tensor: torch.Tensor) -> torch.Tensor:
        """A private copy on the session's device (meta tensors, used for skeletons, stay meta)."""
        return tensor if tensor.device.type == "meta" else tensor.to(self.device).clone()

    # --- one step ------------------------------------------------------------------------------

    def micro_batches(self) -> list[dict[str, torch.Tensor]]:
        """The step's examples (run inside the reproducible mode): accumulation_steps slices of
        batch_size examples each, by name as the task's `load_data` returned them."""
        size = self.job.batch_size
        batches = []
        for m in range(self.accumulation):
            indices = self.batch[m * size : (m + 1) * size] if self.accumulation > 1 else self.batch
            batches.append({name[len("data/") :]: tensor[indices] for name, tensor in self.data.items()})
        return batches

    def run_step(self) -> torch.Tensor:
        """One training step (see the module docstring): `update`, then `advance`. Call inside a
        `ReproducibleMode` for reproducible bits. Returns the loss (detached; the mean over micro-batches)."""
        total = self.update()
        self.advance()
        return total

    def update(self) -> torch.Tensor:
        """The step's computation: forward, backward, clipping and the optimizer's update of the
        state in place (returns the loss). The optimizer's powers of `.item()` values are correctly
        rounded (`protocol.scalar_mode.protocol_items`); `torch.autocast` regions follow
        `protocol.autocast`, the same on every device."""
        # SDPA is held to its math route: on meta tensors (skeletons) it never takes the fused CPU
        # kernel, and both routes give the same bits under pinpoint's definitions.
        with protocol_items(), protocol_rnn(), protocol_autocast(), sdpa_kernel(SDPBackend.MATH):
            return self._update()

    def _update(self) -> torch.Tensor:
        task = self.task
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        for batch in self.micro_batches():
            loss = task.compute_loss(self.model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TaskError(f"task {task.name}: compute_loss returns a one-element tensor")
            if self.accumulation > 1:
                loss = loss / self.accumulation
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        if task.grad_clip is not None:
            # foreach pinned for the same reason as the optimizer's (torch's default depends on the device)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), task.grad_clip, foreach=False)
        self.optimizer.step()
        assert total is not None
        return total

    def advance(self) -> None:
        """The step's bookkeeping after `update`: the scheduler's step, under the protocol's correctly
        rounded `math` (`protocol.scalar_mode.protocol_math`), then t + 1 and its batch."""
        if self.scheduler is not None:
            with protocol_math():
                self.scheduler.step()
            self._normalise_learning_rates()
        self.step = self.step + 1
        self.batch = self._draw_batch()


SCHEDULE_DTYPES = (torch.bool, torch.int64, torch.float64)
"""The dtypes of a scheduler's numbers in the state (`sched/*`), by their Python type."""


def _flatten_numbers(prefix: str, value: Any, device: torch.device | str) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, tensor) for every number in a nest of dicts, lists and tuples, in key order."""
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _flatten_numbers(f"{prefix}/{key}", value[key], device)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _flatten_numbers(f"{prefix}/{index}", item, device)
    elif isinstance(value, bool):
        yield prefix, torch.tensor(value, dtype=torch.bool, device=device)
    elif isinstance(value, int):
        yield prefix, torch.tensor(value, dtype=torch.int64, device=device)
    elif isinstance(value, float):
        yield prefix, torch.tensor(value, dtype=torch.float64, device=device)


def _rebuild_numbers(prefix: str, template: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """`template` with each number replaced by the state's value at its path, typed by the tensor's
    dtype: the inverse of `_flatten_numbers` on the same structure."""
    if isinstance(template, dict):
        return type(template)({key: _rebuild_numbers(f"{prefix}/{key}", item, tensors) for key, item in template.items()})
    if isinstance(template, list | tuple):
        return type(template)(_rebuild_numbers(f"{prefix}/{index}", item, tensors) for index, item in enumerate(template))
    if isinstance(template, bool | int | float):
        tensor = tensors[prefix]
        kind = bool if tensor.dtype == torch.bool else float if tensor.dtype.is_floating_point else int
        return kind(tensor.item())
    return template


def _needs_arguments(function: Any) -> bool:
    """Whether calling `function()` would lack a required argument."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in parameters)


def _call(task: Task, what: str, function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except (TaskError, StateError):
        raise
    except Exception as error:
        raise TaskError(f"task {task.name}: {what} failed: {type(error).__name__}: {error}") from error


def seed_initialisation(seed: int) -> None:
    """Seed the generator a task's own initialisation draws from: the CPU one, which `build_model`
    forks (torch.manual_seed would also queue a seed for every accelerator, formatting a stack trace
    each time: 0.7 ms a session)."""
    torch.default_generator.manual_seed(seed)


def build_model(task: Task, seed: int, meta: bool = False, redraw: bool = True) -> nn.Module:
    """The task's model with its initial parameters. The task's own initialisation runs under
    the CPU generator seeded with `seed` (forked, so the caller's stream is untouched); with the
    task's `protocol_init`, the parameters of the layers pinpoint knows are redrawn from the
    protocol's counter-based generator, so s_0 is the same on every platform. With `meta`, the
    parameters are meta tensors: shapes only, nothing drawn."""
    if meta:
        with torch.device("meta"):
            model = _call(task, "build_model", task.build_model)
    else:
        with torch.random.fork_rng(devices=[]):
            seed_initialisation(seed)
            model = _call(task, "build_model", task.build_model)
    if not isinstance(model, nn.Module):
        raise TaskError(f"task {task.name}: build_model returned a {type(model).__name__}, not an nn.Module")
    if not meta and redraw and task.protocol_init:
        initialize_parameters(model, seed)
    return model


def compute_initial_state(job: JobSpec, task: Task, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """s_0 as this machine computes it for `job` (whatever `job.initial` says)."""
    return Session(job, task, device).state_tensors()


def make_job(task: Task, steps: int, seed: int, batch_size: int | None = None, posting: str = "") -> JobSpec:
    """The job of training `task` for `steps` steps: its digests and the root of s_0, computed here.

    s_0 is this machine's: a task whose own initialisation is not portable (see `build_model`) binds
    the bits this machine drew, and other parties must then load s_0 rather than draw it."""
    from protocol.encoding import compute_digest
    from protocol.state import compute_state_root

    fields: dict[str, Any] = {
        "task": task.digest.hex(),
        "data": task.data_root().hex(),
        "initial": "0" * 64,  # provisional: s_0 is computed from the other fields below
        "steps": steps,
        "seed": seed,
        "batch_size": batch_size if batch_size is not None else task.batch_size or 32,
        "torch_version": torch.__version__.split("+")[0],
        "posting": posting,
    }
    provisional = JobSpec(**fields)
    initial = compute_state_root({name: compute_digest(t) for name, t in compute_initial_state(provisional, task).items()})
    return JobSpec(**dict(fields, initial=initial.hex()))


# --- recording a step -----------------------------------------------------------------------------


def _digests(tensors: dict[str, torch.Tensor]) -> dict[str, Root]:
    return {name: compute_digest(tensor) for name, tensor in tensors.items()}


def tamper_state(session: Session) -> None:
    """Corrupt one parameter (the first in canonical name order) in place: a research cheat."""
    tensors = session.state_tensors()
    first = next(name for name in get_sorted_names(tensors) if name.startswith("param/"))
    with torch.no_grad():
        perturb(tensors[first])


def record_step(
    session: Session,
    tamper: Tamper | None = None,
    skeleton: bool = False,
    tensors: dict[bytes, torch.Tensor] | None = None,
    primitives_for: PrimitivesFor = lambda device: REFERENCE,
) -> StepTrace:
    """Run the session's current step with a recorder; returns the trace (session advances). This
    is what a step's trace is: one node per operator the mode sees, the state's names bound first.

    With `tensors`, every tensor the step reads or writes is added to it by digest; `primitives_for`
    chooses the kernels (the reference by default: the prover passes its fast ones)."""
    t = int(session.step)
    before = session.state_tensors()
    names = get_sorted_names(before)
    before_hashes = {} if skeleton else {name: compute_data_hash(tensor) for name, tensor in before.items()}
    before_digests = {name: compute_digest_of_opening(compute_header(before[name].dtype, tuple(before[name].shape)), data_hash)
                      for name, data_hash in before_hashes.items()}
    hint = b"" if skeleton else compute_structure_hint(before, before_hashes)  # s_t hashed once for both
    recorder = Recorder(skeleton=skeleton, keep_tensors=tensors is not None, defer=not skeleton)
    recorder.bind_state(names, before)
    with ReproducibleMode(RngContext(session.job.seed, t), primitives_for, recorder=recorder, tamper=tamper):
        session.run_step()
    recorder.finish()
    if tamper is not None and tamper.kind == "state" and tamper.step == t:
        tamper_state(session)
    after = session.state_tensors()
    bindings = tuple((name, recorder.ref_of(after[name])) for name in get_sorted_names(after))
    after_digests = {} if skeleton else _digests(after)
    if tensors is not None:
        for name, tensor in after.items():
            recorder.keep(after_digests[name], tensor)
        tensors.update(recorder.tensors)
    return StepTrace(t, tuple(recorder.nodes), bindings, before_digests, after_digests, hint)


def compute_skeleton(
    job: JobSpec, task: Task, state_shapes: dict[str, tuple[torch.dtype, tuple[int, ...]]], scalars: dict[str, torch.Tensor]
) -> Skeleton:
    """The skeleton of a step from s_t's metadata and its one-element tensors' values, on meta tensors.

    `state_shapes` gives every tensor's dtype and shape; `scalars` the values of those with a single
    element (the step counters, which `.item()` reads turn into arguments)."""
    session = Session(job, task, meta=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, (dtype, shape) in state_shapes.items():
        if name in scalars:
            tensors[name] = scalars[name].to("cpu").clone()
        else:
            tensors[name] = torch.empty(shape, dtype=dtype, device="meta")
    session.load_state(tensors)
    trace = record_step(session, skeleton=True)
    return trace.skeleton


