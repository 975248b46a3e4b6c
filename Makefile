# Switchboard build. `make run` serves, `make test` tests; both install what is missing first.
#
#   make [MODE=debug|release] [BUILD=dir]   build BUILD/switchboard (default: build/debug)
#   make run [ARGS="--config FILE"]         build the release binary, then serve
#   make test                               build, run unit and integration tests; last line "N passed, N failed"
#   make check                              clang-format, cppcheck and the banned-function grep
#   make LLAMA_CUDA=1                       link llama.cpp built with its CUDA backend (needs nvcc)

MODE ?= debug
BUILD ?= build/$(MODE)
LLAMA_CUDA ?= 0
export LLAMA_CUDA

# Quiet by default; `make V=1` shows the full commands.
V ?= 0
ifeq ($(V),0)
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
else
  Q :=
  say =
endif

CC ?= cc
CXX ?= c++
PKGS := libevent libevent_pthreads jansson yaml-0.1 libcurl openssl zlib sqlite3 libhs libpq

# The dependency step runs once per build folder; deps.sh is quick when everything is there.
DEPS_STAMP := $(BUILD)/.deps-$(LLAMA_CUDA)
LLAMA_PREFIX = $(shell cat $(BUILD)/.llama-prefix 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
        -Wformat=2 -Wno-missing-field-initializers
ifeq ($(MODE),release)
  OPT := -O2 -g -DNDEBUG
else
  OPT := -O0 -g3 -fsanitize=address,undefined -fno-omit-frame-pointer
  LDOPT := -fsanitize=address,undefined
endif

include scripts/versions.env
SB_VERSION := 0.1.0
CPPFLAGS := -Isrc -I$(BUILD)/gen -D_GNU_SOURCE -DSB_VERSION='"$(SB_VERSION)"' \
            -DSB_LLAMA_CPP_TAG='"$(LLAMA_CPP_TAG)"'
CFLAGS := -std=c11 $(WARN) $(OPT) -pthread
# The chat shim is C++ because llama.cpp's chat-template engine is; it sees common's headers.
CXXFLAGS := -std=c++17 -Wall -Wextra -Werror $(OPT) -pthread
LLAMA_LIBS := -lllama-common -lllama-common-base -lcpp-httplib -lllama -lggml -lggml-cpu -lggml-base
ifeq ($(LLAMA_CUDA),1)
  LLAMA_LIBS += -lggml-cuda -L/usr/local/cuda/lib64 -lcudart -lcublas -lcublasLt -lcuda
endif
LDLIBS = $(shell pkg-config --libs $(PKGS)) -L$(LLAMA_PREFIX)/lib $(LLAMA_LIBS) -lstdc++ -lm -fopenmp -pthread

SRC_C := $(shell find src -name '*.c' | sort)
SRC_CXX := $(shell find src -name '*.cpp' | sort)
MAIN_OBJ := $(BUILD)/obj/src/cli/main.o
OBJ := $(SRC_C:%.c=$(BUILD)/obj/%.o) $(SRC_CXX:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/default_config.o
OBJ += $(BUILD)/obj/gen/ui_assets.o
LIB_OBJ := $(filter-out $(MAIN_OBJ),$(OBJ))
TEST_C := $(shell find tests/unit -name '*.c' 2>/dev/null | sort)
TEST_OBJ := $(TEST_C:%.c=$(BUILD)/obj/%.o)
BIN := $(BUILD)/switchboard

.PHONY: all run test test-unit test-integration check format deps clean
all: $(BIN)

$(DEPS_STAMP): scripts/deps.sh scripts/versions.env
	@mkdir -p $(BUILD)
	scripts/deps.sh packages
	scripts/deps.sh prefix > $(BUILD)/.llama-prefix
	@touch $@
deps: $(DEPS_STAMP)

# Sub-makes see the prefix the dependency step wrote.
$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) -I$(LLAMA_PREFIX)/include $(shell pkg-config --cflags $(PKGS)) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cpp | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(call say,CXX,$<)
	$(Q)$(CXX) $(CPPFLAGS) -I$(LLAMA_PREFIX)/include -I$(LLAMA_PREFIX)/src/common -I$(LLAMA_PREFIX)/src/vendor $(CXXFLAGS) -MMD -MP -c $< -o $@

# The default configuration is compiled into the binary from config/default.yaml.
$(BUILD)/gen/default_config.c: config/default.yaml scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh sb__default_config_text $< > $@
$(BUILD)/obj/gen/default_config.o: $(BUILD)/gen/default_config.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The dashboard's files (docs/dashboard.md) are compiled in the same way, one array per file, named
# sb__ui_<file> with dots as underscores (src/ui/assets.c declares them).
UI_FILES := index.html app.css app.js favicon.svg
$(BUILD)/gen/ui_assets.c: $(addprefix ui/,$(UI_FILES)) scripts/embed.sh
	@mkdir -p $(dir $@)
	$(Q)for f in $(UI_FILES); do scripts/embed.sh sb__ui_$$(echo $$f | tr . _) ui/$$f || exit 1; \
	done > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gen/ui_assets.o: $(BUILD)/gen/ui_assets.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BIN): $(OBJ)
	$(call say,LINK,$@)
	$(Q)$(CXX) $(LDOPT) -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/unit-tests: $(LIB_OBJ) $(TEST_OBJ)
	$(call say,LINK,$@)
	$(Q)$(CXX) $(LDOPT) -o $@ $(LIB_OBJ) $(TEST_OBJ) $(LDLIBS) -lcriterion

# Serving wants the optimized build; tests want the sanitizers of the debug one.
run:
	$(MAKE) --no-print-directory MODE=release BUILD=build/release all
	build/release/switchboard serve $(ARGS)

# The integration tests drive the server with the official SDKs, pinned in package-lock.json.
node_modules/.installed: package.json package-lock.json | $(DEPS_STAMP)
	$(call say,NPM,ci)
	$(Q)npm ci --no-audit --no-fund --silent
	@touch $@

test: $(BIN) $(BUILD)/unit-tests node_modules/.installed
	@scripts/test.sh $(BUILD)

test-unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

test-integration: $(BIN) node_modules/.installed
	SWITCHBOARD_BIN=$(BIN) node --test tests/integration/

check:
	scripts/check.sh

format:
	clang-format -i $(SRC_C) $(shell find src tests -name '*.h') $(TEST_C)

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(TEST_OBJ:.o=.d)
