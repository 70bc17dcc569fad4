# nnd - build, test and benchmark. `make check` alone sets up a fresh Debian 12
# machine (scripts/install-deps), builds everything and runs every test.
#
# Layout: engine/*.c -> build/libnnengine.a, api/*.c -> build/libnnapi.a,
# server/*.c (but main.c) -> build/libnnserver.a, bin/nnd, clients/c -> bin/nnctl,
# tests/unit/test_*.c -> bin/test_* (check), tests/integration/itest_*.c ->
# bin/itest_* (libcurl against a real daemon), bench/*.c -> bin/bench_*.

CC      ?= cc
BUILD   ?= build
BIN     ?= bin
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP -fno-strict-aliasing
SAN     ?=
CFLAGS  += $(SAN)
LDFLAGS += $(SAN) -pthread

DEPS_OK := $(BUILD)/.deps-ok
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
PKG_CFLAGS  := $(shell pkg-config --cflags libcjson libmicrohttpd sqlite3 libcurl zlib check 2>/dev/null)
CJSON_LIBS  := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
MHD_LIBS    := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
SQLITE_LIBS := $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
Z_LIBS      := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)
DEFLATE_LIBS := $(shell pkg-config --libs libdeflate 2>/dev/null || echo -ldeflate)
CHECK_LIBS  := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

CPPFLAGS += $(BLAS_CFLAGS) $(PKG_CFLAGS)

# Each layer compiles with the include paths it may use, so a back edge
# (engine -> api, api -> server, api -> the engine's internals) fails the
# build: engine/ sees its own headers; api/ its own and the engine's public
# nn.h alone (a link to it in $(BUILD)/include); server/, tests, bench and
# clients see all. make check-layers proves it (tests/layers/).
INC_engine := -Iengine
INC_api    := -Iapi -I$(BUILD)/include
INC_all    := -Iserver -Iapi -Iengine
LAYER_OF    = $(firstword $(subst /, ,$(patsubst test/%,%,$(patsubst $(BUILD)/%,%,$@))))
LAYER_INC   = $(or $(INC_$(LAYER_OF)),$(INC_all))

ENGINE_SRC := $(wildcard engine/*.c)
API_SRC    := $(wildcard api/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
NNCTL_SRC  := $(wildcard clients/c/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
ITEST_SRC  := $(wildcard tests/integration/itest_*.c)
ITEST_LIB  := $(filter-out $(ITEST_SRC),$(wildcard tests/integration/*.c))
BENCH_SRC  := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIB_ENGINE := $(BUILD)/libnnengine.a
LIB_API    := $(BUILD)/libnnapi.a
LIB_SERVER := $(BUILD)/libnnserver.a
ENGINE_LIBS := $(BLAS_LIBS) -lm
API_LIBS    := $(CJSON_LIBS) $(DEFLATE_LIBS) $(Z_LIBS) $(ENGINE_LIBS)
# libpq for the PostgreSQL store (server/store_pg.c, --store postgresql://...)
PQ_CFLAGS   := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
PQ_LIBS     := $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)
CPPFLAGS    += $(PQ_CFLAGS)
SERVER_LIBS := $(MHD_LIBS) $(SQLITE_LIBS) $(PQ_LIBS) $(API_LIBS)
# Open MPI for `nnd --mpi` (server/ranks.c): built in when pkg-config's
# ompi-c or mpicc's --showme gives its flags; `make MPI=0` (after make
# clean) builds without, and nnd --mpi then says so.
MPI ?= $(if $(shell pkg-config --exists ompi-c 2>/dev/null && echo y)$(shell mpicc --showme:compile 2>/dev/null),1,0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DNND_MPI $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link)
endif
$(BUILD)/server/ranks.o: CPPFLAGS += $(MPI_CFLAGS)
SERVER_LIBS += $(MPI_LIBS)

UNIT_BINS  := $(patsubst tests/unit/%.c,$(BIN)/%,$(UNIT_SRC))
ITEST_BINS := $(patsubst tests/integration/%.c,$(BIN)/%,$(ITEST_SRC))
BENCH_BINS := $(patsubst bench/%.c,$(BIN)/%,$(BENCH_SRC))
PROGS := $(if $(wildcard server/main.c),$(BIN)/nnd) $(if $(NNCTL_SRC),$(BIN)/nnctl)

.SECONDARY:
.PHONY: all deps check check-layers check-long unit integration sanitize tested bench bench-quick clean fuzz container-test
all: $(DEPS_OK) $(PROGS) $(UNIT_BINS) $(ITEST_BINS) $(BENCH_BINS)

deps $(DEPS_OK):
	@scripts/install-deps
	@mkdir -p $(BUILD) && touch $(DEPS_OK)

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(LAYER_INC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/include/nn.h: engine/nn.h
	@mkdir -p $(dir $@)
	@ln -sf $(abspath $<) $@
$(call obj,$(API_SRC)) $(patsubst %.c,$(BUILD)/test/%.o,$(API_SRC)): | $(BUILD)/include/nn.h

# The engine's element-wise loops (activations, bias, optimizer, batch
# gather, gradient norms) vectorise only at -O3 (GCC's -O2 cost model skips
# loops that need alias checks or an epilogue) and with sqrtf free of errno.
# No fast-math and no FMA contraction, so every float result is the same as
# at -O2, whichever vector width runs.
HOT_CFLAGS ?= -O3 -fno-math-errno -ffp-contract=off
HOT_ENGINE := gemm optim train shard sparse_in sparse_in_plain row_pack layer_activation layer_dense layer_batchnorm layer_dropout loss model predict
$(patsubst %,$(BUILD)/engine/%.o,$(HOT_ENGINE)): CFLAGS += $(HOT_CFLAGS)

# Test builds: unit tests link the engine compiled again with -DNND_TEST
# (engine/tune.h: writable tuning and the counters tests read), the
# production objects keep constants and no counters. Same flags otherwise,
# so both compute the same bits.
LIB_ENGINE_TEST := $(BUILD)/test/libnnengine.a
# In api/ and server/ only the sources that hold a test hook (#ifdef
# NND_TEST, as SQLite's SQLITE_TEST) get a twin under $(BUILD)/test/,
# linked into the unit tests ahead of the libraries (so the library's own
# object of that file is never pulled in).
TEST_HOOKED := $(shell grep -l NND_TEST $(API_SRC) $(SERVER_SRC) 2>/dev/null)
TEST_OBJS   := $(patsubst %.c,$(BUILD)/test/%.o,$(TEST_HOOKED))
$(BUILD)/test/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(LAYER_INC) $(CPPFLAGS) -DNND_TEST $(CFLAGS) -c $< -o $@
$(patsubst %,$(BUILD)/test/engine/%.o,$(HOT_ENGINE)): CFLAGS += $(HOT_CFLAGS)
$(BUILD)/tests/unit/%.o: CPPFLAGS += -DNND_TEST
$(LIB_ENGINE_TEST): $(patsubst %.c,$(BUILD)/test/%.o,$(ENGINE_SRC))
	@rm -f $@; ar rcs $@ $^

$(LIB_ENGINE): $(call obj,$(ENGINE_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIB_API): $(call obj,$(API_SRC))
	@rm -f $@; ar rcs $@ $^ $(if $^,,$(error api/ has no sources))
$(LIB_SERVER): $(call obj,$(SERVER_SRC))
	@rm -f $@; ar rcs $@ $^

$(BIN)/nnd: $(call obj,server/main.c) $(LIB_SERVER) $(LIB_API) $(LIB_ENGINE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(SERVER_LIBS)

$(BIN)/nnctl: $(call obj,$(NNCTL_SRC))
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(CURL_LIBS) $(CJSON_LIBS) -lm

# Unit tests link everything but main(): a test of any module links.
$(BIN)/test_%: $(BUILD)/tests/unit/test_%.o $(TEST_OBJS) $(if $(SERVER_SRC),$(LIB_SERVER)) $(if $(API_SRC),$(LIB_API)) $(LIB_ENGINE_TEST)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(SERVER_LIBS) $(CURL_LIBS)

$(BIN)/itest_%: $(BUILD)/tests/integration/itest_%.o $(call obj,$(ITEST_LIB)) $(if $(API_SRC),$(LIB_API)) $(LIB_ENGINE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(CURL_LIBS) $(API_LIBS)

# bench_onnx exports through api/ (the ONNX writer)
$(BIN)/bench_onnx: $(BUILD)/bench/bench_onnx.o $(LIB_API) $(LIB_ENGINE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(API_LIBS)

$(BIN)/bench_study_store: $(BUILD)/bench/bench_study_store.o $(LIB_SERVER) $(LIB_API) $(LIB_ENGINE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(SERVER_LIBS)

# bench_engine --replicas runs the daemon's replica threads
$(BIN)/bench_engine: $(BUILD)/bench/bench_engine.o $(BUILD)/server/replicas.o $(LIB_ENGINE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(ENGINE_LIBS) $(Z_LIBS)

$(BIN)/bench_%: $(BUILD)/bench/bench_%.o $(LIB_ENGINE)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(ENGINE_LIBS) $(Z_LIBS)

# Every test: unit tests, then integration tests (each starts its own daemon
# on an ephemeral port with a temporary data directory), then extra suites.
check: all check-layers
	@scripts/run-tests $(UNIT_BINS) $(ITEST_BINS)

# tests/layers/<layer>_*.c each include a header that layer may not see,
# and must not compile with the layer's include paths; <layer>_ok.c must
# (so a failure is the include's, not the command's).
LAYER_PROBES := $(wildcard tests/layers/*.c)
check-layers: $(BUILD)/include/nn.h | $(DEPS_OK)
	@for f in $(LAYER_PROBES); do \
	  b=$${f##*/}; \
	  case $$b in engine_*) inc="$(INC_engine)";; api_*) inc="$(INC_api)";; *) inc="$(INC_all)";; esac; \
	  if $(CC) $$inc $(CPPFLAGS) -std=gnu11 -fsyntax-only $$f 2>/dev/null; then ok=1; else ok=0; fi; \
	  case $$b in *_ok.c) want=1;; *) want=0;; esac; \
	  if [ $$ok != $$want ]; then \
	    [ $$want = 1 ] && echo "check-layers: $$f does not compile" >&2 \
	                   || echo "check-layers: $$f compiles: a back edge would build" >&2; \
	    exit 1; fi; \
	done; echo "check-layers: $(words $(LAYER_PROBES)) include probes hold"

unit: all
	@scripts/run-tests $(UNIT_BINS)

# Suites too long for make check (crash loops, chaos runs): each feature adds
# its own line, LONG_TESTS += command. .ci/run runs them after make check.
LONG_TESTS :=
# several daemons on PostgreSQL: 100 jobs under kill -9 (~2-4 min), and
# daemons in network namespaces reaching it over TCP (root)
LONG_TESTS += tests/pg/chaos.sh tests/pg/netns.sh
LONG_TESTS += tests/long/study-crash.sh
LONG_TESTS += tests/long/study-crash-pg.sh
check-long: all
	@NND_SUITES=none scripts/run-tests $(LONG_TESTS)

# The sanitized build makes what its suites run (not bench/), the engine's
# hot files at -O1 as the rest: -O3 under ASan tripled their compile time
# (gemm.c 27 s against 9) for the same source lines and the same bits.
tested: $(DEPS_OK) $(PROGS) $(UNIT_BINS) $(ITEST_BINS)
sanitize:
	$(MAKE) BUILD=build/san BIN=bin/san OPT=-O1 HOT_CFLAGS="-fno-math-errno -ffp-contract=off" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" tested
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 NND_BIN=bin/san \
	  scripts/run-tests $(patsubst $(BIN)/%,bin/san/%,$(UNIT_BINS) $(ITEST_BINS))

bench: all
	@scripts/install-deps --bench
	@bench/run

bench-quick: all
	@scripts/install-deps --bench
	@bench/run --quick

clean:
	rm -rf $(BUILD) $(BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Runs the daemon on its embedded defaults (127.0.0.1:8080, ./nnd-data).
run: $(DEPS_OK) $(BIN)/nnd $(BIN)/nnctl
	$(BIN)/nnd $(ARGS)
.PHONY: run

# Builds the container image and tests it end to end with podman: the
# walk-through, a restart keeping the volume, the API key from a secret file.
container-test:
	@scripts/container-test

# The daemon embeds api/openapi.json (server/openapi_blob.c uses .incbin).
$(BUILD)/server/openapi_blob.o: api/openapi.json

# The dashboard (clients/web/ with uPlot from npm), gzip-compressed into
# $(BUILD)/web and embedded by server/web_blob.c (.incbin).
WEB_DIR := $(BUILD)/web
UPLOT   := tools/node_modules/uplot/dist
WEB_GZ  := $(WEB_DIR)/index.html.gz $(WEB_DIR)/app.js.gz $(WEB_DIR)/app.css.gz
$(WEB_DIR)/index.html.gz: clients/web/index.html
$(WEB_DIR)/app.js.gz: $(UPLOT)/uPlot.iife.min.js clients/web/app.js
$(WEB_DIR)/app.css.gz: $(UPLOT)/uPlot.min.css clients/web/app.css
$(WEB_DIR)/%.gz: | $(DEPS_OK)
	@mkdir -p $(WEB_DIR)
	cat $^ | gzip -9n > $@.tmp && mv $@.tmp $@
$(UPLOT)/%:
	@echo "make: $@ is missing: the dashboard embeds uPlot from npm;" \
	  "run scripts/install-deps (it puts it in tools/node_modules)" >&2; exit 1
$(BUILD)/server/web_blob.o: $(WEB_GZ)
$(BUILD)/server/web_blob.o: CPPFLAGS += -DNND_WEB_DIR='"$(WEB_DIR)"'

# libFuzzer targets (tests/fuzz/) under ASan and UBSan, built with clang;
# each runs FUZZ_SECONDS (default 60) on a copy of its seed corpus.
fuzz:
	@scripts/fuzz
