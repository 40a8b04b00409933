"""VP diffusion with a linear beta schedule: noising, prediction-form conversions and two samplers.

Schedule (specs/dipole.md §7): beta(t) = beta_min + t (beta_max - beta_min) on t in [0, 1], so
log alpha_t = -(beta_max - beta_min) t^2 / 4 - beta_min t / 2, sigma_t = sqrt(1 - alpha_t^2) and the
half log-SNR lambda_t = log(alpha_t / sigma_t). Forward process: a_t = alpha_t a + sigma_t eps.

Samplers take ``eps_fn(x, t) -> eps`` (t a 0-d tensor shared by all rows) so that any combination of
predictors (e.g. the DIPOLE guided one) runs through the same code path:
* DDIM (deterministic, eta = 0);
* DPM-Solver++ (2nd-order multistep, data prediction; Lu et al. 2022, arXiv 2211.01095, Alg. 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from vla.errors import ModelConfigError

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VPLinearSchedule:
    """Continuous-time VP schedule with linear beta(t)."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def lambda_(self, t: torch.Tensor) -> torch.Tensor:
        """Half log-SNR log(alpha_t / sigma_t)."""
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))

    def t_of_lambda(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`lambda_`: solve (beta_max - beta_min) t^2 / 2 + beta_min t = log(1 + e^(-2 lambda))."""
        big_l = torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)
        delta = self.beta_max - self.beta_min
        return 2.0 * big_l / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * delta * big_l))

    def add_noise(self, a0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """a_t = alpha_t a0 + sigma_t eps; t has shape (N,) and broadcasts over a0's trailing dims."""
        shape = (-1,) + (1,) * (a0.dim() - 1)
        return self.alpha(t).view(shape) * a0 + self.sigma(t).view(shape) * eps

    # Prediction forms (all affine in eps at fixed (x, t)) -----------------------------------------------
    def eps_to_x0(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x - self.sigma(t) * eps) / self.alpha(t)

    def x0_to_eps(self, x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x - self.alpha(t) * x0) / self.sigma(t)

    def eps_to_v(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """VP velocity v = alpha_t eps - sigma_t x0."""
        x0 = self.eps_to_x0(x, eps, t)
        return self.alpha(t) * eps - self.sigma(t) * x0

    def v_to_eps(self, x: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # with alpha^2 + sigma^2 = 1: eps = sigma x + alpha v
        return self.sigma(t) * x + self.alpha(t) * v


def sample_train_times(n: int, t_min: float, *, device=None,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """t ~ U(t_min, 1) (specs/dipole.md §7)."""
    u = torch.rand(n, device=device, generator=generator)
    return t_min + (1.0 - t_min) * u


def time_grid(schedule: VPLinearSchedule, num_steps: int, t_end: float, spacing: str, device=None) -> torch.Tensor:
    """num_steps + 1 times from 1 down to t_end, uniform in t or in lambda (log-SNR)."""
    if num_steps < 1:
        raise ModelConfigError("diffusion.num_steps", f"need at least one step, got {num_steps}")
    t_start = torch.tensor(1.0, dtype=torch.float64)
    t_stop = torch.tensor(t_end, dtype=torch.float64)
    if spacing == "uniform":
        grid = torch.linspace(1.0, t_end, num_steps + 1, dtype=torch.float64)
    elif spacing == "logsnr":
        lam = torch.linspace(float(schedule.lambda_(t_start)), float(schedule.lambda_(t_stop)), num_steps + 1,
                             dtype=torch.float64)
        grid = schedule.t_of_lambda(lam)
        grid[0], grid[-1] = t_start, t_stop
    else:
        raise ModelConfigError("diffusion.time_spacing", f"unknown spacing {spacing!r}")
    return grid.to(device=device, dtype=torch.float32)


@dataclass(frozen=True)
class _GridValues:
    """alpha, sigma and lambda at every time of a sampling grid, computed once per sampling call (each with the
    schedule's own formulas on the grid's 0-d times, so the values are those of calling the schedule per step)."""

    alpha: list
    sigma: list
    lambda_: list

    @classmethod
    def of(cls, schedule: VPLinearSchedule, times: torch.Tensor) -> "_GridValues":
        alpha, sigma, lam = [], [], []
        for t in times:
            log_alpha = schedule.log_alpha(t)
            one_minus_alpha_sq = -torch.expm1(2.0 * log_alpha)
            alpha.append(torch.exp(log_alpha))
            sigma.append(torch.sqrt(one_minus_alpha_sq))
            lam.append(log_alpha - 0.5 * torch.log(one_minus_alpha_sq))
        return cls(alpha, sigma, lam)


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, x: torch.Tensor, schedule: VPLinearSchedule, times: torch.Tensor,
                denoise_to_zero: bool = False) -> torch.Tensor:
    """Deterministic DDIM: x_s = alpha_s x0_hat + sigma_s eps_hat along ``times`` (decreasing)."""
    grid = _GridValues.of(schedule, times)
    for i in range(len(times) - 1):
        eps = eps_fn(x, times[i])
        x0 = (x - grid.sigma[i] * eps) / grid.alpha[i]  # VPLinearSchedule.eps_to_x0
        x = grid.alpha[i + 1] * x0 + grid.sigma[i + 1] * eps
    if denoise_to_zero:
        x = (x - grid.sigma[-1] * eps_fn(x, times[-1])) / grid.alpha[-1]
    return x


@torch.no_grad()
def dpm_solver_pp_sample(eps_fn: EpsFn, x: torch.Tensor, schedule: VPLinearSchedule, times: torch.Tensor,
                         denoise_to_zero: bool = False) -> torch.Tensor:
    """DPM-Solver++(2M): multistep 2nd-order solver in the data-prediction form (first step 1st order)."""
    prev_x0: Optional[torch.Tensor] = None
    prev_h: Optional[torch.Tensor] = None
    grid = _GridValues.of(schedule, times)
    for i in range(len(times) - 1):
        x0 = (x - grid.sigma[i] * eps_fn(x, times[i])) / grid.alpha[i]  # VPLinearSchedule.eps_to_x0
        h = grid.lambda_[i + 1] - grid.lambda_[i]
        if prev_x0 is None:
            d = x0
        else:
            r = prev_h / h
            d = x0 + (x0 - prev_x0) / (2.0 * r)
        x = (grid.sigma[i + 1] / grid.sigma[i]) * x - grid.alpha[i + 1] * torch.expm1(-h) * d
        prev_x0, prev_h = x0, h
    if denoise_to_zero:
        x = (x - grid.sigma[-1] * eps_fn(x, times[-1])) / grid.alpha[-1]
    return x


SAMPLERS = {"ddim": ddim_sample, "dpm_solver_pp": dpm_solver_pp_sample}


def run_sampler(name: str, eps_fn: EpsFn, x: torch.Tensor, schedule: VPLinearSchedule, num_steps: int,
                t_end: float, spacing: str = "logsnr", denoise_to_zero: bool = False) -> torch.Tensor:
    """Integrate from x (at t = 1) to t_end with the named sampler."""
    if name not in SAMPLERS:
        raise ModelConfigError("diffusion.sampler", f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    times = time_grid(schedule, num_steps, t_end, spacing, device=x.device)
    return SAMPLERS[name](eps_fn, x, schedule, times, denoise_to_zero=denoise_to_zero)


def gaussian_eps(mean: float, std: float, schedule: VPLinearSchedule) -> EpsFn:
    """Exact eps-predictor of the noised 1-D Gaussian N(mean, std^2) (used by the analytic tests)."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        var = alpha**2 * std**2 + sigma**2
        # score = -(x - alpha m) / var ; eps = -sigma * score
        return sigma * (x - alpha * mean) / var

    return eps_fn


__all__ = [
    "VPLinearSchedule",
    "sample_train_times",
    "time_grid",
    "ddim_sample",
    "dpm_solver_pp_sample",
    "run_sampler",
    "gaussian_eps",
    "SAMPLERS",
]
