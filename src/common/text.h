#pragma once
// Text that leaves the daemon (error messages, state reasons, logs) must stay printable, bounded
// and valid UTF-8, whatever bytes went in. quote_for_message (error.h) is for request text; these
// are for whole messages.
#include <string>
#include <string_view>
#include <vector>

namespace feos {

// `text` cut to at most `max_bytes` (>= 3) at a UTF-8 character boundary, ending in "..." when
// cut. Shorter text is returned unchanged.
std::string cut_utf8(std::string text, size_t max_bytes);

// `text` with every control byte (below 0x20, and 0x7f) written as \xNN; other bytes unchanged.
std::string escape_controls(std::string_view text);

// CPU or node numbers as the kernel lists them ("0-3,8"): sorted, each number once; "" for none.
std::string cpu_list_text(std::vector<int> numbers);

}  // namespace feos
