// Spike, C++/OpenMP: the same algorithm as numba_kernel.py, line for line.
#include <cmath>
#include <cstdint>

static inline double tanh_pos(double x) {
    if (x < 0.01) { double e = std::expm1(2.0 * x); return e / (e + 2.0); }
    double e = std::exp(-2.0 * x);
    return (1.0 - e) / (1.0 + e);
}
static inline void cutoff(double r, double rc, double &f, double &df) {
    double t = r < rc ? tanh_pos(1.0 - r / rc) : 0.0;
    f = t * t * t;
    df = -3.0 * t * t * (1.0 - t * t) / rc;
}
static inline double ipow(double x, int64_t n) {
    double out = 1.0;
    while (n) { if (n & 1) out *= x; n >>= 1; x *= x; }
    return out;
}

extern "C" void pair_cache(int64_t P, const double *vec, int64_t ne, const double *etas,
                           double rc, double *r, double *inv_r, double *u, double *fc,
                           double *dfc, double *ex) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
        double d0 = vec[3 * p], d1 = vec[3 * p + 1], d2 = vec[3 * p + 2];
        double rr = std::sqrt(d0 * d0 + d1 * d1 + d2 * d2);
        r[p] = rr;
        double ir = 1.0 / rr;
        inv_r[p] = ir;
        u[3 * p] = d0 * ir; u[3 * p + 1] = d1 * ir; u[3 * p + 2] = d2 * ir;
        cutoff(rr, rc, fc[p], dfc[p]);
        for (int64_t e = 0; e < ne; ++e) ex[p * ne + e] = std::exp(-etas[e] * rr * rr);
    }
}

extern "C" void centre_kernel(int64_t n, const int64_t *species, const int64_t *sp_off,
                              int64_t ns, const double *r, const double *inv_r, const double *u,
                              const double *fc, const double *dfc, const double *ex, int64_t ne,
                              const double *rad, const int64_t *rad_off, const double *etas,
                              const int64_t *gr_off, const int64_t *g_eta, const int64_t *g_lz,
                              const double *lz, const double *terms, double rc, int64_t nf,
                              double *g, const double *de_dg, double *grad, int64_t mode) {
    const double rc2 = rc * rc;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; ++i) {
        const int64_t c = species[i];
        const int64_t *so = sp_off + i * (ns + 1);
        double eloc[16], aloc[16], daloc[16];
        if (mode == 1)
            for (int64_t p = so[0]; p < so[ns]; ++p) grad[3 * p] = grad[3 * p + 1] = grad[3 * p + 2] = 0.0;
        for (int64_t s = 0; s < ns; ++s) {
            int64_t k0 = rad_off[c * (ns + 1) + s], k1 = rad_off[c * (ns + 1) + s + 1];
            for (int64_t p = so[s]; p < so[s + 1]; ++p) {
                double acc = 0.0, rp = r[p], fp = fc[p], dfp = dfc[p];
                for (int64_t k = k0; k < k1; ++k) {
                    double eta = rad[3 * k], rs = rad[3 * k + 1];
                    int64_t col = (int64_t)rad[3 * k + 2];
                    double x = rp - rs, e = std::exp(-eta * x * x);
                    if (mode == 0) g[i * nf + col] += e * fp;
                    else acc += de_dg[i * nf + col] * e * (dfp - 2.0 * eta * x * fp);
                }
                if (mode == 1) for (int x = 0; x < 3; ++x) grad[3 * p + x] += acc * u[3 * p + x];
            }
        }
        for (int64_t lo = 0; lo < ns; ++lo)
            for (int64_t hi = lo; hi < ns; ++hi) {
                int64_t gi = gr_off[(c * ns + lo) * ns + hi];
                if (gi < 0) continue;
                int64_t e0 = g_eta[2 * gi], en = g_eta[2 * gi + 1];
                int64_t l0 = g_lz[4 * gi], ln = g_lz[4 * gi + 1], t0 = g_lz[4 * gi + 2],
                        t1 = g_lz[4 * gi + 3];
                for (int64_t a = so[lo]; a < so[lo + 1]; ++a) {
                    double ra = r[a], ua0 = u[3 * a], ua1 = u[3 * a + 1], ua2 = u[3 * a + 2];
                    int64_t b0 = lo == hi ? a + 1 : so[hi];
                    for (int64_t b = b0; b < so[hi + 1]; ++b) {
                        double rb = r[b];
                        double cs = ua0 * u[3 * b] + ua1 * u[3 * b + 1] + ua2 * u[3 * b + 2];
                        double rjk2 = ra * ra + rb * rb - 2.0 * ra * rb * cs;
                        if (rjk2 >= rc2) continue;
                        double rjk = std::sqrt(rjk2), fjk, dfjk;
                        cutoff(rjk, rc, fjk, dfjk);
                        double fab = fc[a] * fc[b], fcp = fab * fjk;
                        for (int64_t e = 0; e < en; ++e)
                            eloc[e] = ex[a * ne + e0 + e] * ex[b * ne + e0 + e] *
                                      std::exp(-etas[e0 + e] * rjk2);
                        for (int64_t q = 0; q < ln; ++q) {
                            double lam = lz[2 * (l0 + q)];
                            int64_t zeta = (int64_t)lz[2 * (l0 + q) + 1];
                            double base = 1.0 + lam * cs;
                            if (base <= 0.0) { aloc[q] = 0.0; daloc[q] = 0.0; }
                            else { double pz = ipow(base, zeta - 1); aloc[q] = pz * base; daloc[q] = lam * zeta * pz; }
                        }
                        const double *tt = terms + 4 * t0;
                        if (mode == 0) {
                            for (int64_t t = t0; t < t1; ++t, tt += 4)
                                g[i * nf + (int64_t)tt[3]] += tt[2] * aloc[(int64_t)tt[1]] * eloc[(int64_t)tt[0]] * fcp;
                        } else {
                            double w0 = 0.0, w1 = 0.0, wc = 0.0;
                            for (int64_t t = t0; t < t1; ++t, tt += 4) {
                                double cc = de_dg[i * nf + (int64_t)tt[3]] * tt[2];
                                double ee = eloc[(int64_t)tt[0]];
                                double v = cc * aloc[(int64_t)tt[1]] * ee;
                                w0 += v;
                                w1 += v * etas[e0 + (int64_t)tt[0]];
                                wc += cc * daloc[(int64_t)tt[1]] * ee;
                            }
                            double da = w0 * dfc[a] * fc[b] * fjk - 2.0 * ra * w1 * fcp;
                            double db = w0 * fc[a] * dfc[b] * fjk - 2.0 * rb * w1 * fcp;
                            double djk = (w0 * fab * dfjk - 2.0 * rjk * w1 * fcp) / rjk;
                            double dc = wc * fcp, ia = inv_r[a], ib = inv_r[b];
                            for (int x = 0; x < 3; ++x) {
                                double dx = rb * u[3 * b + x] - ra * u[3 * a + x];
                                grad[3 * a + x] += da * u[3 * a + x] - djk * dx + dc * (u[3 * b + x] - cs * u[3 * a + x]) * ia;
                                grad[3 * b + x] += db * u[3 * b + x] + djk * dx + dc * (u[3 * a + x] - cs * u[3 * b + x]) * ib;
                            }
                        }
                    }
                }
            }
    }
}
