# atoll — top-level build. `make` builds, `make run` serves the examples,
# `make test` runs every test under ASan+UBSan, `make fuzz` fuzzes the HTTP
# request path for a bounded time, `make bench` runs the benchmarks.
# Every target first installs what is missing (scripts/setup.sh).

CC      ?= gcc
BUILD   ?= build
DEPS    := build/deps
SANITIZE ?= 0

ifeq ($(SANITIZE),1)
OUT     := $(BUILD)/asan
# ATOLL_TEST_HOOKS: test-only probes (e.g. the sandbox probe in worker.c).
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DATOLL_TEST_HOOKS
else
OUT     := $(BUILD)/release
OPT     := -O2 -g
endif

PKGS    := libuv jansson libseccomp libcap sqlite3 hiredis libcurl openssl
LLHTTP  := /usr/share/llhttp
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS_ALL = -std=gnu11 $(OPT) $(WARN) -MMD -MP -D_GNU_SOURCE -Isrc -I$(DEPS) -isystem /usr/share/include/llhttp \
             $(QJS_CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS_ALL = $(QJS_LIBS) $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lunistring -lm -lpthread -ldl $(LDLIBS)

LIB_SRC  := $(filter-out src/cli/%,$(shell find src -name '*.c' | sort))
CLI_SRC  := $(shell find src/cli -name '*.c' | sort)
TEST_SRC := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
LIB_OBJ  := $(LIB_SRC:%.c=$(OUT)/%.o) $(OUT)/llhttp/llhttp.o $(OUT)/llhttp/api.o $(OUT)/llhttp/http.o \
            $(OUT)/gen/streams_bc.o $(OUT)/gen/blob_bc.o
CLI_OBJ  := $(CLI_SRC:%.c=$(OUT)/%.o)
TESTS    := $(TEST_SRC:tests/unit/%.c=$(OUT)/tests/%)
BENCH_SRC := $(shell find bench -name '*.c' 2>/dev/null | sort)
BENCHES  := $(BENCH_SRC:bench/%.c=$(OUT)/bench/%)

.PHONY: all setup run test unit-bins bench-bins examples fuzz bench clean
.SECONDARY:
all: $(OUT)/atoll

setup:
	@scripts/setup.sh

# QuickJS: the system's library or Debian's source package, built once.
$(DEPS)/quickjs.mk: scripts/quickjs.sh | setup
	@mkdir -p $(DEPS)
	@scripts/quickjs.sh $@ $(DEPS)
-include $(DEPS)/quickjs.mk

# The URL parser's UTS #46 table, generated from Unicode data (never committed).
$(DEPS)/idna_table.h: scripts/gen_idna_table.py scripts/unicode-idna.sh | setup
	@mkdir -p $(DEPS)
	@scripts/unicode-idna.sh $(DEPS)
	@python3 $< $(DEPS)/tr46/mappingTable.json >$@.tmp
	@mv $@.tmp $@
$(OUT)/src/web/url_idna.o: $(DEPS)/idna_table.h

$(OUT)/%.o: %.c $(DEPS)/quickjs.mk | setup
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# Web APIs written in JavaScript, compiled to QuickJS bytecode at build time
# by our own small compiler (scripts/jsc.c) and linked in as a byte array.
$(OUT)/jsc: scripts/jsc.c $(DEPS)/quickjs.mk | setup
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) $(WARN) $(QJS_CFLAGS) -o $@ $< $(QJS_LIBS) -lm -lpthread -ldl

$(OUT)/gen/%_bc.c: src/js/api/%.js $(OUT)/jsc
	@mkdir -p $(dir $@)
	$(OUT)/jsc $< jsapi_$*_bc >$@.tmp
	@mv $@.tmp $@

$(OUT)/gen/%.o: $(OUT)/gen/%.c
	$(CC) -std=gnu11 $(OPT) -c $< -o $@

# llhttp's C sources as Debian ships them; warnings are theirs, not ours.
$(OUT)/llhttp/%.o: $(LLHTTP)/%.c | setup
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -fPIC -isystem /usr/share/include/llhttp -w -c $< -o $@

$(OUT)/libatoll.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(OUT)/atoll: $(CLI_OBJ) $(OUT)/libatoll.a
	$(CC) $(OPT) -o $@ $(CLI_OBJ) $(OUT)/libatoll.a $(LDLIBS_ALL) $(LDFLAGS)
	@ln -sf $(notdir $(OUT))/atoll $(BUILD)/atoll 2>/dev/null || true

$(OUT)/tests/%: $(OUT)/tests/unit/%.o $(OUT)/libatoll.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -o $@ $< $(OUT)/libatoll.a $(LDLIBS_ALL) -lcmocka $(LDFLAGS)

$(OUT)/tests/unit/%.o: tests/unit/%.c $(DEPS)/quickjs.mk | setup
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -c $< -o $@

# Benchmark programs (bench/*.c), linked against the same library.
$(OUT)/bench/%: bench/%.c $(OUT)/libatoll.a $(DEPS)/quickjs.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(OUT)/libatoll.a $(LDLIBS_ALL) $(LDFLAGS)

bench-bins: $(BENCHES)

# The example tenants; the wasm one is C compiled to WASI by clang.
EXAMPLES := $(BUILD)/examples/wasm-hello.wasm
$(BUILD)/examples/%.wasm: examples/%/hello.c | setup
	@mkdir -p $(dir $@)
	clang --target=wasm32-wasi -O2 -o $@ $<
examples: $(EXAMPLES)

run: all examples
	$(OUT)/atoll serve --config examples/atoll.jsonc

# The whole suite runs against the sanitized build.
test:
	@$(MAKE) --no-print-directory SANITIZE=1 $(BUILD)/asan/atoll unit-bins examples
	@tests/run.sh $(BUILD)/asan

unit-bins: $(TESTS)

fuzz: setup
	@$(MAKE) --no-print-directory -f fuzz/fuzz.mk FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60)

bench: all bench-bins
	@bench/run.sh $(OUT)

clean:
	rm -rf $(BUILD)/release $(BUILD)/asan $(BUILD)/fuzz

-include $(shell find $(BUILD)/release $(BUILD)/asan -name '*.d' 2>/dev/null)
