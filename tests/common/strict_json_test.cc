// common/strict_json: every kind of error message, paths, the two namings, UTF-8.
#include "common/strict_json.h"

#include <gtest/gtest.h>

namespace feos::strict_json {
namespace {

// The message of a failed result; "" (and a test failure) when it succeeded.
template <typename T>
std::string error_of(const Result<T>& result) {
  EXPECT_FALSE(result) << "succeeded";
  if (result) return "";
  EXPECT_EQ(result.error().code, Code::kInvalidArgument) << result.error().message;
  return result.error().message;
}

// A document and a reader of it: the reader points into the document, which must outlive it.
struct Doc {
  explicit Doc(json document, std::string path = "doc", Naming naming = Naming::kValue)
      : value(std::move(document)),
        reader(ObjectReader::open(value, std::move(path), naming).value()) {}
  Doc(const Doc&) = delete;
  Doc& operator=(const Doc&) = delete;

  const json value;
  ObjectReader reader;
};

TEST(StrictJsonTest, ParseNamesTheTextAndThePosition) {
  EXPECT_EQ(parse(R"({"a": [1, 2]})", "doc").value(), json::parse(R"({"a": [1, 2]})"));
  const std::string broken = error_of(parse("{\n  \"a\": oops\n}", "policy.json"));
  EXPECT_EQ(broken.rfind("policy.json: not valid JSON: ", 0), 0u) << broken;
  EXPECT_NE(broken.find("line 2, column"), std::string::npos) << broken;
  EXPECT_NE(error_of(parse("", "doc")).find("doc: not valid JSON"), std::string::npos);
  // Too large for a double: out_of_range in nlohmann, an error here, not an exception.
  EXPECT_NE(error_of(parse("[-1e999]", "doc")).find("number overflow"), std::string::npos);
  EXPECT_NE(error_of(parse("\"\xff\"", "doc")).find("doc: not valid JSON"), std::string::npos);
}

TEST(StrictJsonTest, OpenWantsAnObject) {
  EXPECT_EQ(error_of(ObjectReader::open(json::array(), "spec")),
            "spec: expected an object, got array");
  EXPECT_EQ(error_of(ObjectReader::open(json(3), "gpus[0]")),
            "gpus[0]: expected an object, got integer 3");
  EXPECT_EQ(error_of(ObjectReader::open(json(3), "x", Naming::kType)),
            "x: expected an object, got number");
  EXPECT_EQ(error_of(ObjectReader::open(nullptr, "")), "expected an object, got null");
}

TEST(StrictJsonTest, GettersReadTypedValues) {
  Doc reader_doc(json::parse(R"({"s": "text", "n": null, "b": true, "u": 4294967295,
      "big": 18446744073709551615, "i": -2147483648, "l": -9223372036854775808,
      "a": [1], "o": {"x": 1}})"));
  auto& reader = reader_doc.reader;
  EXPECT_TRUE(reader.has("s"));
  EXPECT_FALSE(reader.has("missing"));
  EXPECT_EQ(reader.string("s").value(), "text");
  EXPECT_EQ(reader.optional_string("n").value(), std::nullopt);
  EXPECT_EQ(reader.boolean("b").value(), true);
  EXPECT_EQ(reader.unsigned_integer<uint32_t>("u").value(), 4294967295u);
  EXPECT_EQ(reader.unsigned_integer<uint64_t>("big").value(), UINT64_MAX);
  EXPECT_EQ(reader.signed_integer<int32_t>("i").value(), INT32_MIN);
  EXPECT_EQ(reader.signed_integer<int64_t>("l").value(), INT64_MIN);
  EXPECT_EQ(reader.array("a").value()->size(), 1u);
  auto inner = reader.object("o");
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->path(), "doc.o");
  EXPECT_EQ(inner->signed_integer<int>("x").value(), 1);
  EXPECT_TRUE(inner->finish());
  EXPECT_TRUE(reader.finish()) << reader.finish().error().message;
}

TEST(StrictJsonTest, MissingFieldNamesTheObject) {
  Doc reader_doc(json::object(), "spec.cpus");
  auto& reader = reader_doc.reader;
  EXPECT_EQ(error_of(reader.string("max_vcpus")), "spec.cpus: missing field max_vcpus");
  Doc root_doc(json::object(), "");
  auto& root = root_doc.reader;
  EXPECT_EQ(error_of(root.boolean("flag")), "missing field flag");
}

TEST(StrictJsonTest, WrongTypesNameTheFieldAndTheValue) {
  // A json built in code may hold non-negative integers as signed: accepted as unsigned.
  Doc reader_doc(json{{"s", 7}, {"b", "yes"}, {"a", json::object()}, {"n", true},
                               {"neg", -1}, {"float", 2.0}, {"wide", 4294967296LL},
                               {"low", -2147483649LL}, {"high", 2147483648LL},
                               {"signed_positive", 5}, {"huge", UINT64_MAX}},
                          "spec.x");
  auto& reader = reader_doc.reader;
  EXPECT_EQ(error_of(reader.string("s")), "spec.x.s: expected a string, got integer 7");
  EXPECT_EQ(error_of(reader.boolean("b")), "spec.x.b: expected a boolean, got string");
  EXPECT_EQ(error_of(reader.array("a")), "spec.x.a: expected an array, got object");
  EXPECT_EQ(error_of(reader.optional_string("n")),
            "spec.x.n: expected a string or null, got boolean");
  EXPECT_EQ(error_of(reader.object("s")), "spec.x.s: expected an object, got integer 7");
  EXPECT_EQ(error_of(reader.unsigned_integer<uint32_t>("neg")),
            "spec.x.neg: expected an unsigned 32-bit integer, got negative integer -1");
  EXPECT_EQ(error_of(reader.unsigned_integer<uint64_t>("float")),
            "spec.x.float: expected an unsigned 64-bit integer, got non-integer number 2.0");
  EXPECT_EQ(error_of(reader.unsigned_integer<uint32_t>("wide")),
            "spec.x.wide: expected an unsigned 32-bit integer, got integer 4294967296");
  EXPECT_EQ(error_of(reader.signed_integer<int>("low")),
            "spec.x.low: expected a 32-bit integer, got negative integer -2147483649");
  EXPECT_EQ(error_of(reader.signed_integer<int>("high")),
            "spec.x.high: expected a 32-bit integer, got integer 2147483648");
  EXPECT_EQ(error_of(reader.signed_integer<int64_t>("huge")),
            "spec.x.huge: expected a 64-bit integer, got integer 18446744073709551615");
  EXPECT_EQ(error_of(reader.signed_integer<int64_t>("b")),
            "spec.x.b: expected a 64-bit integer, got string");
  EXPECT_EQ(reader.unsigned_integer<uint32_t>("signed_positive").value(), 5u);
}

TEST(StrictJsonTest, TypeNamingShowsNoValues) {
  Doc reader_doc(json{{"b", 1}, {"s", 2.5}}, "", Naming::kType);
  auto& reader = reader_doc.reader;
  EXPECT_EQ(error_of(reader.boolean("b")), "b: expected a boolean, got number");
  EXPECT_EQ(error_of(reader.string("s")), "s: expected a string, got number");
  EXPECT_EQ(describe(json(-3)), "negative integer -3");
  EXPECT_EQ(describe(json(-3), Naming::kType), "number");
  EXPECT_EQ(describe(json("long secret text")), "string");
}

TEST(StrictJsonTest, FinishRejectsUnreadKeys) {
  Doc reader_doc(json{{"read", 1}, {"bridge", "br0"}}, "spec.nets[0]");
  auto& reader = reader_doc.reader;
  ASSERT_TRUE(reader.signed_integer<int>("read"));
  EXPECT_EQ(error_of(reader.finish()), "spec.nets[0]: unknown field \"bridge\"");
  // A key read by a getter that failed counts as read: the getter's error is the one reported.
  Doc all_read_doc(json{{"x", "not a number"}});
  auto& all_read = all_read_doc.reader;
  EXPECT_FALSE(all_read.signed_integer<int>("x"));
  EXPECT_TRUE(all_read.finish());
}

TEST(StrictJsonTest, OnlyKeysListsTheKnownKeysAndQuotesTheUnknown) {
  Doc reader_doc(json{{"allow_ids", json::array()}, {"allow", 1}}, "");
  auto& reader = reader_doc.reader;
  EXPECT_EQ(error_of(reader.only_keys({"allow_ids", "allow_group_peers"})),
            "unknown field 'allow' (known: allow_ids, allow_group_peers)");
  // The key is request text: control characters do not reach the message as they are.
  Doc hostile_doc(json{{"a\nb\x1b[31m", 1}}, "file");
  auto& hostile = hostile_doc.reader;
  EXPECT_EQ(error_of(hostile.only_keys({"x"})),
            "file: unknown field 'a\\x0ab\\x1b[31m' (known: x)");
  EXPECT_TRUE(Doc(json{{"x", 1}}).reader.only_keys({"x", "y"}));
}

TEST(StrictJsonTest, StringsConvertsEachElement) {
  auto to_number = [](const std::string& s) -> Result<int> {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
      return fail(Code::kOutOfRange, "invalid number " + quote_for_message(s));
    }
    return std::stoi(s);
  };
  Doc reader_doc(json{{"good", {"1", "22"}}, {"empty", json::array()},
                               {"not_array", "1"}, {"not_string", {"1", 2}},
                               {"bad", {"1", "x", 3}}},
                          "", Naming::kType);
  auto& reader = reader_doc.reader;
  EXPECT_EQ(reader.strings<int>("good", to_number).value(), (std::vector<int>{1, 22}));
  EXPECT_TRUE(reader.strings<int>("empty", to_number).value().empty());
  EXPECT_EQ(error_of(reader.strings<int>("not_array", to_number)),
            "not_array: expected an array of strings, got string");
  EXPECT_EQ(error_of(reader.strings<int>("not_string", to_number)),
            "not_string[1]: expected a string, got number");
  // The first bad element, in order; the conversion's code becomes INVALID_ARGUMENT.
  EXPECT_EQ(error_of(reader.strings<int>("bad", to_number)), "bad[1]: invalid number 'x'");
  EXPECT_EQ(error_of(reader.strings<int>("missing", to_number)), "missing field missing");
}

struct Pair {
  int a = 0;
  bool b = false;
};

Result<Pair> pair_from(ObjectReader reader) {
  Pair pair;
  FEOS_ASSIGN_OR_RETURN(pair.a, reader.signed_integer<int>("a"));
  FEOS_ASSIGN_OR_RETURN(pair.b, reader.boolean("b"));
  FEOS_TRY(reader.finish());
  return pair;
}

TEST(StrictJsonTest, ObjectsDecodeEachElementUnderItsPath) {
  Doc reader_doc(json::parse(R"({"one": {"a": 1, "b": true},
      "list": [{"a": 2, "b": false}, {"a": 3, "b": true}],
      "bad_element": [{"a": 1, "b": true}, {"a": 1, "b": 0}],
      "extra": [{"a": 1, "b": true, "c": 0}], "scalar": [4], "not_list": {}})"),
                          "spec");
  auto& reader = reader_doc.reader;
  EXPECT_EQ(reader.object<Pair>("one", pair_from).value().a, 1);
  auto list = reader.objects<Pair>("list", pair_from);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].a, 3);
  EXPECT_TRUE((*list)[1].b);
  EXPECT_EQ(error_of(reader.objects<Pair>("bad_element", pair_from)),
            "spec.bad_element[1].b: expected a boolean, got integer 0");
  EXPECT_EQ(error_of(reader.objects<Pair>("extra", pair_from)),
            "spec.extra[0]: unknown field \"c\"");
  EXPECT_EQ(error_of(reader.objects<Pair>("scalar", pair_from)),
            "spec.scalar[0]: expected an object, got integer 4");
  EXPECT_EQ(error_of(reader.objects<Pair>("not_list", pair_from)),
            "spec.not_list: expected an array, got object");
  // A root array.
  EXPECT_EQ(error_of(objects_of<Pair>(json::object(), "gpus", pair_from)),
            "gpus: expected an array, got object");
  EXPECT_EQ(objects_of<Pair>(json::array(), "gpus", pair_from).value().size(), 0u);
}

TEST(StrictJsonTest, Utf8) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5"));
  EXPECT_FALSE(is_valid_utf8("\xff"));              // never valid
  EXPECT_FALSE(is_valid_utf8("abc\xc3"));           // truncated sequence
  EXPECT_FALSE(is_valid_utf8("\xc3("));             // bad continuation byte
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong "/"
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF

  json value = {{"ok", "fine"}, {"list", {"a", {{"deep", "\x80"}}}}};
  EXPECT_EQ(find_invalid_utf8(value, "spec"), "spec.list[1].deep");
  EXPECT_EQ(find_invalid_utf8(value, ""), "list[1].deep");
  EXPECT_EQ(find_invalid_utf8(json{{"ok", "fine"}}, "spec"), std::nullopt);
}

TEST(StrictJsonTest, Paths) {
  EXPECT_EQ(key_path("spec", "cpus"), "spec.cpus");
  EXPECT_EQ(key_path("", "allow_ids"), "allow_ids");
  EXPECT_EQ(item_path("spec.disks", 1), "spec.disks[1]");
  EXPECT_EQ(at_path("spec", "missing field x"), "spec: missing field x");
  EXPECT_EQ(at_path("", "missing field x"), "missing field x");
}

}  // namespace
}  // namespace feos::strict_json
