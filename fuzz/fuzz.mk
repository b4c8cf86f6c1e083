# Builds and runs the libFuzzer targets for the HTTP request path and the
# proxy's response path (called by the top Makefile's `make fuzz`). clang compiles the same sources the
# product uses (src/core, the parser and message model of src/http, and
# Debian's llhttp) into build/fuzz/, with a second, libFuzzer-free build of
# the target that replays saved inputs given as arguments.
#   make -f fuzz/fuzz.mk FUZZ_SECONDS=60

CLANG        ?= clang
FUZZ_SECONDS ?= 60
OUT          := build/fuzz
LLHTTP       := /usr/share/llhttp
SRC          := $(sort $(wildcard src/core/*.c)) src/http/parser.c src/http/message.c \
                $(LLHTTP)/llhttp.c $(LLHTTP)/api.c $(LLHTTP)/http.c
FLAGS        := -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -isystem /usr/share/include/llhttp \
                -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CORPUS       := $(OUT)/corpus-http
# The response target drives the real proxy over a socketpair on libuv.
RESP_SRC     := $(SRC) src/http/proxy.c
RESP_LIBS    := $(shell pkg-config --libs libuv)

.PHONY: run replay
run: $(OUT)/fuzz_http_request $(OUT)/fuzz_http_response replay
	@mkdir -p $(CORPUS) $(CORPUS)-response
	$(OUT)/fuzz_http_request -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict \
	    -artifact_prefix=$(OUT)/ -print_final_stats=1 $(CORPUS) fuzz/corpus/http
	$(OUT)/fuzz_http_response -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict \
	    -artifact_prefix=$(OUT)/ -print_final_stats=1 $(CORPUS)-response fuzz/corpus/http-response

# The seed corpus must pass before fuzzing starts.
replay: $(OUT)/fuzz_http_request_replay $(OUT)/fuzz_http_response_replay
	@$(OUT)/fuzz_http_request_replay fuzz/corpus/http/* >/dev/null && echo "replayed fuzz/corpus/http"
	@$(OUT)/fuzz_http_response_replay fuzz/corpus/http-response/* >/dev/null && \
	    echo "replayed fuzz/corpus/http-response"

$(OUT)/fuzz_http_request: fuzz/fuzz_http_request.c $(SRC) $(wildcard src/core/*.h src/http/*.h)
	@mkdir -p $(OUT)
	$(CLANG) $(FLAGS) -fsanitize=fuzzer,address,undefined -o $@ fuzz/fuzz_http_request.c $(SRC)

$(OUT)/fuzz_http_request_replay: fuzz/fuzz_http_request.c $(SRC) $(wildcard src/core/*.h src/http/*.h)
	@mkdir -p $(OUT)
	$(CLANG) $(FLAGS) -fsanitize=address,undefined -DATOLL_FUZZ_REPLAY -o $@ fuzz/fuzz_http_request.c $(SRC)

$(OUT)/fuzz_http_response: fuzz/fuzz_http_response.c $(RESP_SRC) $(wildcard src/core/*.h src/http/*.h)
	@mkdir -p $(OUT)
	$(CLANG) $(FLAGS) -fsanitize=fuzzer,address,undefined -o $@ fuzz/fuzz_http_response.c $(RESP_SRC) $(RESP_LIBS)

$(OUT)/fuzz_http_response_replay: fuzz/fuzz_http_response.c $(RESP_SRC) $(wildcard src/core/*.h src/http/*.h)
	@mkdir -p $(OUT)
	$(CLANG) $(FLAGS) -fsanitize=address,undefined -DATOLL_FUZZ_REPLAY -o $@ fuzz/fuzz_http_response.c $(RESP_SRC) $(RESP_LIBS)
