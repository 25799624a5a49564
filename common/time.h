/* time.h — the clocks every module reads: monotonic milliseconds for timeouts and
 * backoff, wall-clock milliseconds for timestamps people read, and an absolute
 * CLOCK_MONOTONIC deadline for pthread_cond_timedwait on condvars set to that clock. */
#ifndef SLUICE_TIME_H
#define SLUICE_TIME_H

#include <stdint.h>
#include <time.h>

uint64_t time_mono_ms(void); /* CLOCK_MONOTONIC */
uint64_t time_mono_us(void); /* CLOCK_MONOTONIC, microseconds */
uint64_t time_wall_ms(void); /* CLOCK_REALTIME */
/* *ts = CLOCK_MONOTONIC now + in_ms, normalised. */
void time_mono_deadline(struct timespec *ts, uint64_t in_ms);

#endif
