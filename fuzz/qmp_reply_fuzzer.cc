// What QEMU sends on the QMP socket, parsed the way QmpClient's reader does: the input is split
// into lines like the socket stream; the first line is also tried as the greeting, every line is
// classified (parse_qmp_message), replies go through qmp_reply_result() as execute() does, and
// events' data is rendered as the hypervisor logs it. Checks: nothing crashes or throws; a reply
// carries the id it was matched by; errors use the documented codes and name the command.
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "vmm/qemu/qmp_client.h"

using feos::Code;
using feos::vmm::qemu::QmpMessage;

namespace {

void check_line(std::string_view line) {
  QmpMessage message = feos::vmm::qemu::parse_qmp_message(line);
  switch (message.kind) {
    case QmpMessage::Kind::kUnparsable:
    case QmpMessage::Kind::kUnmatched:
      return;
    case QmpMessage::Kind::kEvent:
      (void)message.event.data.dump();  // QemuHypervisor logs every event's data
      if (message.event.data.is_object() && message.event.data.contains("reason") &&
          message.event.data["reason"].is_string())
        (void)message.event.data["reason"].get<std::string>();
      return;
    case QmpMessage::Kind::kReply:
      break;
  }
  FUZZ_CHECK(message.body.is_object(), "reply body is not an object");
  FUZZ_CHECK(message.body.contains("id") && message.body["id"].is_number_unsigned() &&
                 message.body["id"].get<uint64_t>() == message.id,
             "reply id %llu does not match its body", static_cast<unsigned long long>(message.id));
  auto result = feos::vmm::qemu::qmp_reply_result("query-status", message.body);
  if (result) {
    (void)result->dump();
    return;
  }
  const Code code = result.error().code;
  FUZZ_CHECK(code == Code::kNotFound || code == Code::kUnimplemented || code == Code::kInternal,
             "reply error code %s", std::string(feos::code_name(code)).c_str());
  FUZZ_CHECK(result.error().message.rfind("qmp query-status: ", 0) == 0,
             "error does not name the command: %s", result.error().message.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = feos::fuzz::as_text(data, size);
  const size_t first_newline = input.find('\n');
  const std::string_view first = input.substr(0, first_newline);
  auto version = feos::vmm::qemu::parse_qmp_greeting(first);
  if (version) {
    FUZZ_CHECK(!version->empty(), "empty version");
  } else {
    feos::fuzz::check_error(version.error(), Code::kInternal, "parse_qmp_greeting");
  }
  size_t pos = 0;
  while (pos <= input.size()) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    check_line(input.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return 0;
}
