#include "cli/command_line.h"

#include <CLI/CLI.hpp>
#include <map>
#include <sstream>

#include "cli/device_commands.h"
#include "cli/tls_files.h"

namespace feos::cli {
namespace {

constexpr char kFooter[] =
    "\nExit status: 0 success, 1 the daemon answered an error, a wait timed out or the host\n"
    "is not ready (host check), 2 usage error, 3 the daemon cannot be reached (including a\n"
    "failed TLS handshake).\n"
    "TCP: feosd accepts --address connections only over TLS with a client certificate: give\n"
    "--tls-ca (the CA of feosd's certificate), --tls-cert and --tls-key (a certificate that\n"
    "feosd's --tls-client-ca accepts).\n"
    "Environment: FEOSCTL_SOCKET replaces the default socket path.";

// A string option whose presence matters: bound to CLI11, read back as std::optional.
struct OptionalText {
  std::string value;
  CLI::Option* option = nullptr;

  std::optional<std::string> get() const {
    if (option == nullptr || option->count() == 0) return std::nullopt;
    return value;
  }
};

OptionalText* add_text(CLI::App* app, std::map<std::string, OptionalText>& store,
                       const std::string& name, const std::string& help,
                       const std::string& type_name) {
  OptionalText& slot = store[app->get_name() + " " + name];
  slot.option = app->add_option(name, slot.value, help)->type_name(type_name);
  return &slot;
}

// Names of `group`'s subcommands, comma-separated, in declaration order.
std::string subcommand_names(const CLI::App& group) {
  std::string names;
  for (const CLI::App* sub : group.get_subcommands({})) {
    if (!names.empty()) names += ", ";
    names += sub->get_name();
  }
  return names;
}

// One-line usage error from a CLI11 parse error. CLI11's "A subcommand is required" does not say
// which ones exist nor what was typed instead, so that case is spelled out.
Error usage_error(const CLI::App& app, const CLI::ParseError& e) {
  std::string message = e.what();
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  if (message.rfind("A subcommand is required", 0) == 0) {
    // The group that lacks its command: the selected one ("vm"), or the top level.
    std::vector<CLI::App*> selected = app.get_subcommands();
    const CLI::App& group = selected.empty() ? app : *selected.front();
    message =
        selected.empty() ? "expected a command (" : "expected a " + group.get_name() + " command (";
    message += subcommand_names(group) + ")";
    std::vector<std::string> rest = app.remaining(/*recurse=*/true);
    if (!rest.empty()) message += ", got '" + rest.front() + "'";
  }
  return Error{Code::kInvalidArgument, message};
}

}  // namespace

std::string GlobalOptions::grpc_target() const {
  if (address) return *address;
  return "unix:" + socket_path;
}

std::string GlobalOptions::where() const {
  if (address) return "address: " + *address + (tls ? " with TLS" : "");
  return "socket: " + socket_path;
}

Result<ParsedCommandLine> parse_command_line(const std::vector<std::string>& args,
                                             const CommandLineEnv& env) {
  CLI::App app{"feosctl: control the VMs and host GPUs of a feosd host daemon", "feosctl"};
  app.footer(kFooter);
  app.require_subcommand(1);
  // Global options may also follow the subcommands: `feosctl vm list -o json`.
  app.fallthrough();

  std::map<std::string, OptionalText> texts;
  OptionalText* socket = add_text(
      &app, texts, "--socket",
      "Unix socket of feosd (default: $FEOSCTL_SOCKET or " + std::string(kDefaultSocket) + ")",
      "PATH");
  OptionalText* address = add_text(&app, texts, "--address",
                                   "Connect over TCP instead of the Unix socket", "HOST:PORT");
  address->option->excludes(socket->option);
  OptionalText* tls_ca = add_text(
      &app, texts, "--tls-ca", "With --address: use TLS, verify feosd's certificate with this CA",
      "FILE");
  OptionalText* tls_cert = add_text(
      &app, texts, "--tls-cert", "With --tls-ca: client certificate to present (PEM)", "FILE");
  OptionalText* tls_key =
      add_text(&app, texts, "--tls-key", "Private key of --tls-cert (PEM, unencrypted)", "FILE");
  OptionalText* tls_server_name =
      add_text(&app, texts, "--tls-server-name",
               "With --tls-ca: name in feosd's certificate, when not the address's host", "NAME");
  tls_ca->option->needs(address->option);
  tls_cert->option->needs(tls_ca->option)->needs(tls_key->option);
  tls_key->option->needs(tls_cert->option);
  tls_server_name->option->needs(tls_ca->option);
  OptionalText* output =
      add_text(&app, texts, "-o,--output", "Output format: table (default) or json", "table|json");
  OptionalText* timeout = add_text(
      &app, texts, "--timeout", "Deadline of each call and of connecting (default 30)", "SECONDS");

  CLI::App* vm = app.add_subcommand("vm", "Manage virtual machines");
  vm->require_subcommand(1);

  std::map<CLI::App*, Command> commands;
  std::map<CLI::App*, std::string> ids;

  // vm create
  CreateArgs create;
  CLI::App* create_cmd = vm->add_subcommand("create", "Create a VM (and start it with --start)");
  commands[create_cmd] = Command::kVmCreate;
  OptionalText* c_id =
      add_text(create_cmd, texts, "--id", "VM id (generated when omitted)", "UUID");
  create_cmd->add_option("--vcpus", create.vcpus, "Boot vCPUs (default 1)")->type_name("N");
  OptionalText* c_max = add_text(create_cmd, texts, "--max-vcpus", "Maximum vCPUs", "N");
  create_cmd->add_option("--memory", create.memory_mib, "Memory in MiB (default 512)")
      ->type_name("MIB");
  OptionalText* c_hugepages = add_text(create_cmd, texts, "--hugepages",
                                       "Back guest memory with hugepages: 2M or 1G (alone: the host's default size)",
                                       "[SIZE]");
  c_hugepages->option->expected(0, 1);
  OptionalText* c_image =
      add_text(create_cmd, texts, "--image", "Boot disk image: host path or file:// URL", "REF");
  OptionalText* c_kernel =
      add_text(create_cmd, texts, "--kernel", "Kernel for direct boot (host path)", "PATH");
  OptionalText* c_initramfs =
      add_text(create_cmd, texts, "--initramfs", "Initramfs for direct boot (host path)", "PATH");
  OptionalText* c_cmdline = add_text(create_cmd, texts, "--cmdline", "Kernel command line", "STR");
  create_cmd->add_option("--disk", create.disks, "Extra disk (repeatable)")
      ->type_name("PATH[,ro][,id=ID]");
  create_cmd->add_option("--tap", create.taps, "NIC on a host tap interface (repeatable)")
      ->type_name("NAME[,mac=MAC][,id=ID]");
  create_cmd
      ->add_option("--gpu", create.gpus,
                   "Pass a whole host GPU (every function of its card) by PCI address; "
                   "rombar=on|off exposes its option ROM, boot-vga makes it the guest's primary "
                   "display (repeatable)")
      ->type_name("ADDR[,rombar=on|off][,boot-vga]");
  OptionalText* c_gpu_count = add_text(create_cmd, texts, "--gpus",
                                       "More whole GPUs, picked by feosd: free ones on one NUMA node "
                                       "when possible (recorded: every start takes the same)",
                                       "N");
  OptionalText* c_gpu_model = add_text(create_cmd, texts, "--gpu-model",
                                       "With --gpus: only this model, by id (10de:2335) or part of "
                                       "its name (H200)",
                                       "MODEL");
  create_cmd->add_flag("--gpu-p2p", create.gpu_p2p,
                       "With --gpus: the guest wants peer-to-peer, so GPUs under one PCIe switch first");
  create_cmd->add_option("--gpu-clique", create.gpu_cliques,
                         "NVIDIA GPUs that share a GPUDirect P2P clique, by address (repeatable, one "
                         "clique each); off: none. Default: by host topology")
      ->type_name("ADDR,ADDR[,...]|off");
  OptionalText* c_guest_numa = add_text(create_cmd, texts, "--guest-numa",
                                        "Guest NUMA nodes mirroring the GPUs' host nodes: auto or off "
                                        "(default: the daemon's --guest-numa)", "auto|off");
  OptionalText* c_ignition =
      add_text(create_cmd, texts, "--ignition", "File whose content is the VM's ignition", "FILE");
  OptionalText* c_firmware = add_text(create_cmd, texts, "--firmware",
                                      "Guest firmware: bios (SeaBIOS, the default) or uefi (OVMF, with "
                                      "a variable store of the VM's own)",
                                      "bios|uefi");
  create_cmd->add_flag("--secure-boot", create.secure_boot,
                       "UEFI with Secure Boot enforced (Microsoft's keys enrolled; implies --firmware uefi)");
  bool start_after_create = false;
  CLI::Option* c_start =
      create_cmd->add_flag("--start", start_after_create, "Start the VM right after creating it");
  bool no_wait = false;
  create_cmd
      ->add_flag("--no-wait", no_wait,
                 "Return as soon as feosd answers, with the VM creating (by default wait until it is "
                 "created: its image pulled and its GPUs bound)")
      ->excludes(c_start);
  bool dry_run = false;
  create_cmd
      ->add_flag("--dry-run", dry_run,
                 "Check and resolve everything a create and start would, change nothing, and "
                 "show the plan: GPUs, decisions, address space, qemu command line")
      ->excludes(c_start);

  // Commands that take just the VM id.
  const std::pair<const char*, std::pair<Command, const char*>> simple[] = {
      {"start", {Command::kVmStart, "Start a created or stopped VM"}},
      {"get", {Command::kVmGet, "Show a VM's state and configuration"}},
      {"shutdown", {Command::kVmShutdown, "Ask the guest to power off (ACPI power button); powered off after a grace"}},
      {"pause", {Command::kVmPause, "Pause a running VM"}},
      {"resume", {Command::kVmResume, "Resume a paused VM"}},
      {"delete", {Command::kVmDelete, "Stop the VM if it runs and remove it"}},
      {"ping", {Command::kVmPing, "Check that the daemon answers for a VM; show its version"}},
  };
  OptionalText* s_grace = nullptr;
  for (const auto& [name, what] : simple) {
    CLI::App* cmd = vm->add_subcommand(name, what.second);
    commands[cmd] = what.first;
    cmd->add_option("ID", ids[cmd], "VM id")->required();
    if (what.first == Command::kVmShutdown)
      s_grace = add_text(cmd, texts, "--grace",
                         "Power the VM off if the guest has not after SECONDS (0 to 3600; default: the "
                         "daemon's --shutdown-grace)",
                         "SECONDS");
  }

  DeviceCommands devices;
  add_device_commands(*vm, devices);

  CLI::App* list_cmd = vm->add_subcommand("list", "List VMs");
  commands[list_cmd] = Command::kVmList;

  // vm console
  CLI::App* console_cmd = vm->add_subcommand(
      "console", "Attach to a VM's serial console (Ctrl-] detaches when stdin is a terminal)");
  commands[console_cmd] = Command::kVmConsole;
  console_cmd->add_option("ID", ids[console_cmd], "VM id")->required();
  OptionalText* k_until =
      add_text(console_cmd, texts, "--until",
               "Exit 0 as soon as TEXT appears in the output (stdin ignored)", "TEXT");
  OptionalText* k_send =
      add_text(console_cmd, texts, "--send",
               "Send TEXT and a newline after attaching (stdin ignored)", "TEXT");
  OptionalText* k_wait =
      add_text(console_cmd, texts, "--wait",
               "Give up after SECONDS: exit 1 when waiting for --until, else 0", "SECONDS");
  OptionalText* k_idle =
      add_text(console_cmd, texts, "--idle-ms",
               "With --send alone: detach after MS of quiet output (default 300)", "MS");

  // vm events
  EventsArgs events_args;
  CLI::App* events_cmd = vm->add_subcommand(
      "events", "Stream state changes: first the history, then live ones (of one VM or all)");
  commands[events_cmd] = Command::kVmEvents;
  OptionalText* e_id = add_text(events_cmd, texts, "ID", "VM id (all VMs when omitted)", "ID");
  OptionalText* e_tail = add_text(events_cmd, texts, "--tail", "History: the last N events", "N");
  OptionalText* e_since_id = add_text(events_cmd, texts, "--since-id",
                                      "History: the events after this event id", "EVENT_ID");
  OptionalText* e_since =
      add_text(events_cmd, texts, "--since", "History: the events of the last SECONDS", "SECONDS");
  e_tail->option->excludes(e_since_id->option)->excludes(e_since->option);
  e_since_id->option->excludes(e_since->option);
  bool no_follow = false;
  events_cmd->add_flag("--no-follow", no_follow,
                       "Exit after the history (once no event came for --idle-ms)");
  OptionalText* e_idle = add_text(events_cmd, texts, "--idle-ms",
                                  "Quiet period that ends the history (default 300)", "MS");
  OptionalText* e_until = add_text(events_cmd, texts, "--until-state",
                                   "Exit 0 once the VM (ID required) is in STATE", "STATE");
  OptionalText* e_wait = add_text(events_cmd, texts, "--wait",
                                  "Give up after SECONDS: exit 1 when waiting for --until-state, "
                                  "else 0",
                                  "SECONDS");

  // gpu list
  CLI::App* gpu = app.add_subcommand("gpu", "Inspect the host's GPUs and PCI devices");
  gpu->require_subcommand(1);
  CLI::App* gpu_list_cmd = gpu->add_subcommand(
      "list", "List the host's GPUs (every PCI device with --all) and whether each is assignable");
  commands[gpu_list_cmd] = Command::kGpuList;
  bool all_devices = false;
  gpu_list_cmd->add_flag("--all", all_devices,
                         "Every PCI device (bridges, NICs, ...), not only display controllers");

  // host check
  CLI::App* host = app.add_subcommand("host", "Inspect the host");
  host->require_subcommand(1);
  CLI::App* host_check_cmd = host->add_subcommand(
      "check", "Check that the host is ready for GPU passthrough (exit 1 when not)");
  commands[host_check_cmd] = Command::kHostCheck;

  // CLI11 wants a C-style argv including the program name.
  std::vector<const char*> argv{"feosctl"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp&) {
    return ParsedCommandLine{app.help(), {}};
  } catch (const CLI::CallForAllHelp&) {
    return ParsedCommandLine{app.help("", CLI::AppFormatMode::All), {}};
  } catch (const CLI::ParseError& e) {
    return fail(usage_error(app, e));
  }

  ParsedCommandLine parsed;
  Invocation& inv = parsed.invocation;

  // Global options.
  if (auto path = socket->get()) {
    if (path->empty()) return fail(Code::kInvalidArgument, "--socket: path must not be empty");
    inv.global.socket_path = absolute_path(*path, env.cwd);
  } else if (env.socket_env && !env.socket_env->empty()) {
    inv.global.socket_path = absolute_path(*env.socket_env, env.cwd);
  }
  if (auto addr = address->get()) {
    if (addr->empty() || addr->find(':') == std::string::npos) {
      return fail(Code::kInvalidArgument, "--address: expected HOST:PORT, got '" + *addr + "'");
    }
    inv.global.address = *addr;
  }
  if (auto ca = tls_ca->get()) {
    FEOS_ASSIGN_OR_RETURN(inv.global.tls,
                          read_tls_options(*ca, tls_cert->get(), tls_key->get(), tls_server_name->get(), env));
  }
  if (auto format = output->get()) {
    if (*format == "table") {
      inv.global.output = OutputFormat::kTable;
    } else if (*format == "json") {
      inv.global.output = OutputFormat::kJson;
    } else {
      return fail(Code::kInvalidArgument,
                  "-o/--output: expected table or json, got '" + *format + "'");
    }
  }
  if (auto seconds = timeout->get()) {
    auto value = parse_seconds("--timeout", *seconds);
    if (!value) return fail(value.error());
    inv.global.timeout_s = *value;
  }

  FEOS_ASSIGN_OR_RETURN(const bool device_command, finish_device_command(devices, inv, env.cwd));
  if (device_command) return parsed;
  // The selected command: exactly one leaf under exactly one group (require_subcommand).
  CLI::App* leaf = app.get_subcommands().at(0)->get_subcommands().at(0);
  inv.command = commands.at(leaf);
  if (auto it = ids.find(leaf); it != ids.end()) {
    if (it->second.empty()) return fail(Code::kInvalidArgument, "ID: must not be empty");
    inv.vm_id = it->second;
  }

  switch (inv.command) {
    case Command::kVmCreate: {
      create.vm_id = c_id->get();
      create.max_vcpus = c_max->get();
      create.image = c_image->get();
      create.hugepages = c_hugepages->get();
      create.kernel = c_kernel->get();
      create.initramfs = c_initramfs->get();
      create.cmdline = c_cmdline->get();
      create.ignition_file = c_ignition->get();
      create.firmware = c_firmware->get();
      create.gpu_count = c_gpu_count->get();
      create.gpu_model = c_gpu_model->get();
      create.guest_numa = c_guest_numa->get();
      auto request = build_create_request(create, env.cwd, *env.fs);
      if (!request) return fail(request.error());
      inv.create_request = std::move(*request);
      inv.create_request.set_dry_run(dry_run);
      inv.start_after_create = start_after_create;
      inv.create_no_wait = no_wait;
      break;
    }
    case Command::kVmShutdown:
      if (auto grace = s_grace->get()) {
        auto value = parse_uint("--grace", *grace, 0, 3600);
        if (!value) return fail(value.error());
        inv.shutdown_grace_s = static_cast<uint32_t>(*value);
      }
      break;
    case Command::kVmConsole: {
      inv.console.until = k_until->get();
      inv.console.send = k_send->get();
      if (inv.console.until && inv.console.until->empty()) {
        return fail(Code::kInvalidArgument, "--until: text must not be empty");
      }
      if (auto wait = k_wait->get()) {
        auto value = parse_seconds("--wait", *wait);
        if (!value) return fail(value.error());
        inv.console.wait_s = *value;
      }
      if (auto idle = k_idle->get()) {
        auto value = parse_uint("--idle-ms", *idle, 1, 3'600'000);
        if (!value) return fail(value.error());
        inv.console.idle_ms = static_cast<int>(*value);
      }
      break;
    }
    case Command::kVmEvents: {
      events_args.vm_id = e_id->get();
      events_args.tail = e_tail->get();
      events_args.since_id = e_since_id->get();
      events_args.since_s = e_since->get();
      auto request = build_events_request(events_args);
      if (!request) return fail(request.error());
      inv.events_request = std::move(*request);
      if (events_args.vm_id) inv.vm_id = *events_args.vm_id;
      inv.events.follow = !no_follow;
      if (auto idle = e_idle->get()) {
        auto value = parse_uint("--idle-ms", *idle, 1, 3'600'000);
        if (!value) return fail(value.error());
        inv.events.idle_ms = static_cast<int>(*value);
      }
      if (auto state = e_until->get()) {
        if (!events_args.vm_id) {
          return fail(Code::kInvalidArgument, "--until-state: needs the VM ID argument");
        }
        auto value = parse_state("--until-state", *state);
        if (!value) return fail(value.error());
        inv.events.until_state = *value;
      }
      if (auto wait = e_wait->get()) {
        auto value = parse_seconds("--wait", *wait);
        if (!value) return fail(value.error());
        inv.events.wait_s = *value;
      }
      break;
    }
    case Command::kGpuList: inv.pci_request.set_gpus_only(!all_devices); break;
    default: break;
  }
  return parsed;
}

}  // namespace feos::cli
